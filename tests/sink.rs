//! The Parquet sink with another source's keys and a token-map output, read back by the parquet
//! crate's Arrow reader (an independent decoder of what arrow-rs' writer wrote).

use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, StringArray};
use arrow_schema::{DataType, Field};
use haidef_wsi::ParquetSink;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::sync::Arc;

#[test]
fn token_maps_keep_their_shape_and_keys_their_columns() {
    let dir = std::env::temp_dir().join(format!("haidef-sink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.parquet");
    let shape = [2, 3, 4];
    let keys = vec![Field::new("uid", DataType::Utf8, false)];
    let mut sink = ParquetSink::create(&path, keys, &shape, Default::default()).unwrap();
    let values: Vec<f32> = (0..48).map(|v| v as f32 / 4.0).collect();
    let uids: ArrayRef = Arc::new(StringArray::from(vec!["1.2.3", "1.2.4"]));
    // A batch whose embedding buffer does not fit its rows is an error, not a panic.
    let err = sink.write(vec![uids.clone()], &values[..47]).unwrap_err().to_string();
    assert!(err.contains("47 embedding values for 2 rows of dimension 24"), "{err}");
    sink.write(vec![uids], &values).unwrap();
    sink.append_metadata("note", "appended at close");
    assert!(!path.exists(), "written under a temporary name until finished");
    sink.finish().unwrap();

    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
    let field = builder.schema().field_with_name("embedding").unwrap().clone();
    assert_eq!(field.metadata().get("shape").map(String::as_str), Some("[2, 3, 4]"));
    assert!(matches!(field.data_type(), DataType::FixedSizeList(_, 24)), "{:?}", field.data_type());
    let kv = builder.metadata().file_metadata().key_value_metadata().unwrap().clone();
    assert!(kv.iter().any(|k| k.key == "note" && k.value.as_deref() == Some("appended at close")));
    let batch = builder.build().unwrap().next().unwrap().unwrap();
    let uid = batch.column_by_name("uid").unwrap().as_any().downcast_ref::<StringArray>().unwrap().value(1).to_string();
    assert_eq!(uid, "1.2.4");
    let emb = batch.column_by_name("embedding").unwrap().as_any().downcast_ref::<FixedSizeListArray>().unwrap().clone();
    let row1 = emb.value(1);
    assert_eq!(row1.as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec(), values[24..].to_vec());
    std::fs::remove_dir_all(&dir).unwrap();
}
