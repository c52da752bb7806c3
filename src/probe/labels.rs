//! The label file (CSV): the key column, `label` (the class, as text), and optionally `group`
//! (patient id: rows of one group never fall on both sides of a split) and `split` (`train` or
//! `test`: a split fixed by the user instead of a drawn one). Joined to embedding rows by key.

use crate::probe::embeddings::EmbeddingRows;
use crate::probe::error::{ProbeError, ProbeResult};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// One label row.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The class.
    pub class: String,
    /// The group (patient), when the file has a `group` column and the cell is not empty.
    pub group: Option<String>,
    /// `Some(true)` for `train`, `Some(false)` for `test`, when the file has a `split` column.
    pub train: Option<bool>,
}

/// A label file read: labels by key.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The key column's name.
    pub key_column: String,
    /// Labels by key.
    pub by_key: HashMap<String, Label>,
}

/// Reads `path`: a header line with `key_column` and `label` (and optionally `group`, `split`).
pub fn read_labels(path: &Path, key_column: &str) -> ProbeResult<Labels> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| ProbeError::file(path, e))?;
    let headers = reader.headers().map_err(|e| ProbeError::data(path, e.to_string()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let columns = headers.iter().collect::<Vec<_>>().join(", ");
    let key = col(key_column).ok_or_else(|| {
        ProbeError::data(
            path,
            format!("no column '{key_column}' (the key given with --key); the columns are: {columns}. Name the key column both files share with --key"),
        )
    })?;
    let label = col("label").ok_or_else(|| ProbeError::data(path, format!("no column 'label' (each row's class); the columns are: {columns}")))?;
    let (group, split) = (col("group"), col("split"));
    let mut by_key = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| ProbeError::data(path, format!("line {line}: {e}")))?;
        let get = |c: usize| record.get(c).unwrap_or("").to_string();
        let k = get(key);
        let class = get(label);
        if k.is_empty() || class.is_empty() {
            return Err(ProbeError::data(path, format!("line {line}: empty {}", if k.is_empty() { key_column } else { "label" })));
        }
        let train = match split.map(get).as_deref() {
            None | Some("") => None,
            Some("train") => Some(true),
            Some("test") => Some(false),
            Some(other) => return Err(ProbeError::data(path, format!("line {line}: split '{other}'; expected train or test"))),
        };
        let group = group.map(get).filter(|g| !g.is_empty());
        let new = Label { class, group, train };
        if let Some(old) = by_key.insert(k.clone(), new.clone()) {
            if old != new {
                return Err(ProbeError::data(path, format!("line {line}: {key_column} '{k}' is labelled twice, differently")));
            }
        }
    }
    if by_key.is_empty() {
        return Err(ProbeError::data(path, "no label rows"));
    }
    Ok(Labels { key_column: key_column.to_string(), by_key })
}

/// Embedding rows joined with their labels.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// Index into the embedding rows of each labelled row.
    pub rows: Vec<usize>,
    /// Class index of each labelled row (into `classes`).
    pub y: Vec<usize>,
    /// The classes, sorted.
    pub classes: Vec<String>,
    /// Group index of each labelled row: the `group` column, else the key (so that rows sharing
    /// a key, such as a slide's patches, are never split).
    pub groups: Vec<usize>,
    /// Each group's name (the `group` cell, or `key:` and the key), by group index.
    pub group_names: Vec<String>,
    /// The fixed split of each labelled row, when the label file has one.
    pub train: Option<Vec<bool>>,
    /// Embedding rows without a label (left out).
    pub unlabelled: usize,
}

/// Joins `labels` to `rows` by key. Labels whose key names no row are an error (how many, and a
/// few of them); rows without a label are left out and counted.
pub fn join(rows: &EmbeddingRows, labels: &Labels, labels_path: &Path) -> ProbeResult<Labelled> {
    let present: BTreeSet<&str> = rows.keys.iter().map(String::as_str).collect();
    let mut missing: Vec<&str> = labels.by_key.keys().map(String::as_str).filter(|k| !present.contains(k)).collect();
    if !missing.is_empty() {
        missing.sort();
        let few: Vec<String> = missing.iter().take(5).map(|k| format!("'{k}'")).collect();
        let example = rows.keys.first().map(String::as_str).unwrap_or("");
        return Err(ProbeError::data(
            labels_path,
            format!(
                "{} of {} labels name a {} that is not in the embeddings ({}{}); the embeddings' keys look like '{example}'",
                missing.len(),
                labels.by_key.len(),
                labels.key_column,
                few.join(", "),
                if missing.len() > 5 { ", …" } else { "" }
            ),
        ));
    }
    let classes: Vec<String> = labels.by_key.values().map(|l| l.class.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let class_index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    let mut out =
        Labelled { rows: Vec::new(), y: Vec::new(), classes: classes.clone(), groups: Vec::new(), group_names: Vec::new(), train: None, unlabelled: 0 };
    let mut train = Vec::new();
    let mut any_split = false;
    for (i, key) in rows.keys.iter().enumerate() {
        let Some(label) = labels.by_key.get(key) else {
            out.unlabelled += 1;
            continue;
        };
        out.rows.push(i);
        out.y.push(class_index[label.class.as_str()]);
        let g = label.group.clone().unwrap_or_else(|| format!("key:{key}"));
        let next = group_index.len();
        let gi = *group_index.entry(g.clone()).or_insert(next);
        if gi == next {
            out.group_names.push(g);
        }
        out.groups.push(gi);
        any_split |= label.train.is_some();
        train.push(label.train);
    }
    if any_split {
        if let Some(pos) = train.iter().position(Option::is_none) {
            let key = &rows.keys[out.rows[pos]];
            return Err(ProbeError::data(
                labels_path,
                format!("the split column is empty for {} '{key}'; give train or test on every row, or leave the column out", labels.key_column),
            ));
        }
        out.train = Some(train.into_iter().map(|t| t.unwrap_or(true)).collect());
    }
    if classes.len() < 2 {
        return Err(ProbeError::Labels(format!(
            "{}: every label is '{}'; a classifier needs at least two classes",
            labels_path.display(),
            classes.first().map(String::as_str).unwrap_or("")
        )));
    }
    Ok(out)
}
