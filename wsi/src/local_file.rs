//! Local DICOM Part 10 files: metadata without pixel data, and lazy frame reads.
//!
//! Opening reads the header only (up to the Pixel Data element) and notes where the pixel data
//! starts. The frame table (byte offset and length of each frame) is built on the first frame
//! read: from the Extended Offset Table, the Basic Offset Table, or one scan of the fragment
//! headers, seeking over fragment bodies. Frame reads then read exactly that frame's bytes.

use crate::error::{Location, Result, WsiError};
use crate::frame_source::FrameSource;
use crate::image_info::ImageInfo;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::meta::FileMetaTable;
use dicom_object::OpenFileOptions;
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::dataset::LazyDataToken;
use dicom_parser::StatefulDecode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);

/// Where the Pixel Data value starts in the file.
#[derive(Debug, Clone, Copy)]
enum PixelDataStart {
    /// Encapsulated: offset of the first item (the Basic Offset Table).
    Encapsulated(u64),
    /// Native: offset and length of the value.
    Native { offset: u64, length: u64 },
}

/// Byte ranges of each frame's fragments.
#[derive(Debug)]
struct FrameTable {
    /// (offset, length) of each fragment's value, in file order.
    fragments: Vec<(u64, u32)>,
    /// Frame i consists of fragments[first[i]..first[i + 1]].
    first: Vec<usize>,
}

/// One local Part 10 file, with lazily built frame table.
#[derive(Debug)]
pub(crate) struct LocalFrames {
    location: Location,
    file: File,
    file_len: u64,
    start: PixelDataStart,
    number_of_frames: u32,
    /// Bytes per native frame.
    native_frame_len: u64,
    /// First two bytes of a JPEG frame, to group fragments when there are more than frames.
    jpeg: bool,
    extended_offset_table: Option<(Vec<u64>, Vec<u64>)>,
    table: OnceLock<std::result::Result<FrameTable, String>>,
}

/// Opens a Part 10 file: reads its metadata (not its pixel data) and prepares lazy frame reads.
pub(crate) fn open_instance(path: &Path) -> Result<(ImageInfo, LocalFrames)> {
    let location: Location = path.display().to_string();
    let not_dicom = |message: String| WsiError::NotDicom { location: location.clone(), message };
    let mut file = File::open(path).map_err(|e| WsiError::io(location.clone(), e))?;
    let file_len = file.metadata().map_err(|e| WsiError::io(location.clone(), e))?.len();

    // File meta group: after the 128-byte preamble and "DICM". Its value lengths are checked
    // against the file first: dicom-rs allocates a declared length before reading it (an 80 KB
    // file claiming a 4 GB meta element took a second and 800 MB; found by the `dicom_folder`
    // fuzzer).
    check_meta_lengths(&mut file, file_len).map_err(not_dicom)?;
    file.seek(SeekFrom::Start(128)).map_err(|e| WsiError::io(location.clone(), e))?;
    let meta = FileMetaTable::from_reader(&mut file).map_err(|e| not_dicom(e.to_string()))?;
    let dataset_start = file.stream_position().map_err(|e| WsiError::io(location.clone(), e))?;
    let ts_uid = meta.transfer_syntax().trim_end_matches('\0').trim().to_string();
    let ts = TransferSyntaxRegistry.get(&ts_uid).ok_or_else(|| WsiError::UnsupportedTransferSyntax {
        location: location.clone(),
        uid: ts_uid.clone(),
        name: "unknown to dicom-rs".into(),
    })?;

    // dicom-rs's eager reader (below) allocates and zero-fills a value's declared length before
    // reading it, so a 38 KB file claiming a 4 GB element took seconds and gigabytes (found by
    // the `dicom_file` fuzzer; docs/FUZZING.md). Its own token stream is walked first, each
    // declared length checked against the file before the value is read.
    check_value_lengths(&file, ts, dataset_start, file_len).map_err(not_dicom)?;

    // A lazy pass over the header tokens (values skipped, not read) to find where Pixel Data
    // starts.
    file.seek(SeekFrom::Start(dataset_start)).map_err(|e| WsiError::io(location.clone(), e))?;
    let mut reader = LazyDataSetReader::new_with_ts(BufReader::new(file.try_clone().map_err(|e| WsiError::io(location.clone(), e))?), ts)
        .map_err(|e| not_dicom(e.to_string()))?;
    let mut depth = 0usize;
    let mut start = None;
    while let Some(token) = reader.advance() {
        let token = token.map_err(|e| not_dicom(format!("while looking for Pixel Data: {e}")))?;
        match token {
            LazyDataToken::SequenceStart { .. } | LazyDataToken::ItemStart { .. } => depth += 1,
            LazyDataToken::SequenceEnd | LazyDataToken::ItemEnd => depth = depth.saturating_sub(1),
            LazyDataToken::PixelSequenceStart if depth == 0 => {
                start = Some(PixelDataStart::Encapsulated(reader.into_decoder().position()));
                break;
            }
            LazyDataToken::LazyValue { header, decoder } if depth == 0 && header.tag == tags::PIXEL_DATA => {
                let offset = decoder.position();
                let length = header.len.get().map(u64::from).unwrap_or(0);
                start = Some(PixelDataStart::Native { offset, length });
                break;
            }
            LazyDataToken::LazyValue { .. } | LazyDataToken::LazyItemValue { .. } => {
                token.skip().map_err(|e| not_dicom(format!("while looking for Pixel Data: {e}")))?
            }
            _ => {}
        }
    }

    // Metadata up to (not including) Pixel Data, every value now known to fit; the SOP class
    // check comes first so that a CT slice, or an object without pixels, is reported as "not a
    // WSI" rather than as a missing tag.
    let obj = OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path).map_err(|e| not_dicom(e.to_string()))?;
    let info = ImageInfo::from_dataset(&obj, &ts_uid, location.clone())?;
    let start = start.ok_or_else(|| WsiError::pixel_data(location.clone(), "no Pixel Data (7FE0,0010) element"))?;

    let native_frame_len =
        u64::from(info.tile_width) * u64::from(info.tile_height) * u64::from(info.samples_per_pixel) * u64::from(info.bits_allocated).div_ceil(8);
    // Every frame takes bytes of the file (at least an 8-byte item header when encapsulated):
    // a frame count the file cannot hold is refused before tables are sized by it.
    let (data_at, per_frame) = match start {
        PixelDataStart::Encapsulated(at) => (at, 8),
        PixelDataStart::Native { offset, .. } => (offset, native_frame_len.max(1)),
    };
    let room = file_len.saturating_sub(data_at) / per_frame;
    if u64::from(info.number_of_frames) > room {
        return Err(WsiError::pixel_data(
            location.clone(),
            format!("NumberOfFrames is {} but the {} bytes of pixel data hold at most {room}", info.number_of_frames, file_len.saturating_sub(data_at)),
        ));
    }
    let frames = LocalFrames {
        location,
        file,
        file_len,
        start,
        number_of_frames: info.number_of_frames,
        native_frame_len,
        jpeg: info.transfer_syntax.starts_with("1.2.840.10008.1.2.4.5"),
        extended_offset_table: info.extended_offset_table.clone(),
        table: OnceLock::new(),
    };
    Ok((info, frames))
}

/// Walks the dataset's tokens as dicom-object's eager reader produces them, up to Pixel Data,
/// and refuses an element whose declared length exceeds the file before its value is read (the
/// lazy reader can parse a corrupt sequence differently, so it cannot stand in for this). A
/// token error is left to the eager reader to report.
fn check_value_lengths(file: &File, ts: &dicom_encoding::TransferSyntax, start: u64, file_len: u64) -> std::result::Result<(), String> {
    use dicom_parser::dataset::read::DataSetReader;
    use dicom_parser::dataset::DataToken;
    let mut f = file.try_clone().map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let Ok(reader) = DataSetReader::new_with_ts(BufReader::new(f), ts) else { return Ok(()) };
    for token in reader.map_while(std::result::Result::ok) {
        match token {
            DataToken::PixelSequenceStart => break,
            DataToken::ElementHeader(h) if h.tag == tags::PIXEL_DATA => break,
            DataToken::ElementHeader(h) => {
                let len = h.len.get().map(u64::from).unwrap_or(0);
                if len > file_len {
                    return Err(format!("element {} claims {len} bytes but the whole file is {file_len} bytes: file truncated or corrupt", h.tag));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Walks the file meta group's elements as dicom-object's meta reader does (explicit VR little
/// endian after the preamble and "DICM"; as many bytes as (0002,0000) says, whatever their group;
/// a VR it does not know read with a 4-byte length, as UN) and checks that each value fits in
/// the file before that reader allocates it.
fn check_meta_lengths(file: &mut File, file_len: u64) -> std::result::Result<(), String> {
    use std::io::Read;
    const SHORT: [&[u8; 2]; 21] =
        [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"];
    file.seek(SeekFrom::Start(132)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(file);
    let header = |reader: &mut BufReader<&mut File>| -> Option<(u16, u16, u64, u64)> {
        let mut h = [0u8; 8];
        reader.read_exact(&mut h).ok()?;
        let (group, element) = (u16::from_le_bytes([h[0], h[1]]), u16::from_le_bytes([h[2], h[3]]));
        if SHORT.iter().any(|vr| h[4..6] == vr[..]) {
            Some((group, element, 8, u64::from(u16::from_le_bytes([h[6], h[7]]))))
        } else {
            let mut l = [0u8; 4];
            reader.read_exact(&mut l).ok()?;
            Some((group, element, 12, u64::from(u32::from_le_bytes(l))))
        }
    };
    // (0002,0000): the group's length; too short a file is the meta reader's to report.
    let Some((_, _, h, 4)) = header(&mut reader) else { return Ok(()) };
    let mut value = [0u8; 4];
    if reader.read_exact(&mut value).is_err() {
        return Ok(());
    }
    let group_length = u64::from(u32::from_le_bytes(value));
    let (mut pos, end) = (132 + h + 4, (132 + h + 4).saturating_add(group_length));
    while pos < end {
        let Some((group, element, h, len)) = header(&mut reader) else { return Ok(()) };
        if len != u64::from(u32::MAX) && (pos + h).saturating_add(len) > file_len {
            return Err(format!(
                "file meta element ({group:04X},{element:04X}) at byte {pos} claims {len} bytes but the file ends at byte {file_len}: not a valid DICOM file"
            ));
        }
        pos = (pos + h).saturating_add(if len == u64::from(u32::MAX) { 0 } else { len });
        reader.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl LocalFrames {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_read(&self.file, &mut buf[done..], offset + done as u64)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                done += n;
            }
            Ok(())
        }
    }

    /// Reads the item header at `offset`: (tag, length).
    fn item_header(&self, offset: u64) -> std::result::Result<(Tag, u32), String> {
        let mut h = [0u8; 8];
        if offset + 8 > self.file_len {
            return Err(format!("item header at byte {offset} lies past the end of the file ({} bytes): file truncated?", self.file_len));
        }
        self.read_at(offset, &mut h).map_err(|e| format!("reading item header at byte {offset}: {e}"))?;
        let tag = Tag(u16::from_le_bytes([h[0], h[1]]), u16::from_le_bytes([h[2], h[3]]));
        Ok((tag, u32::from_le_bytes([h[4], h[5], h[6], h[7]])))
    }

    fn build_table(&self, bot_offset: u64) -> std::result::Result<FrameTable, String> {
        let n = self.number_of_frames as usize;
        let (tag, bot_len) = self.item_header(bot_offset)?;
        if tag != ITEM {
            return Err(format!("expected the Basic Offset Table item (FFFE,E000) at byte {bot_offset}, found {tag}"));
        }
        let first_fragment = bot_offset + 8 + u64::from(bot_len);
        if first_fragment > self.file_len {
            return Err(format!("Basic Offset Table ({bot_len} bytes) runs past the end of the file: file truncated?"));
        }

        // Scan all fragment headers once (seeking over their bodies).
        let mut fragments = Vec::with_capacity(n);
        let mut pos = first_fragment;
        loop {
            let (tag, len) = self.item_header(pos)?;
            if tag == SEQUENCE_DELIMITER {
                break;
            }
            if tag != ITEM {
                return Err(format!("expected a fragment item (FFFE,E000) at byte {pos}, found {tag}"));
            }
            let end = pos + 8 + u64::from(len);
            if end > self.file_len {
                return Err(format!(
                    "fragment {} at byte {pos} claims {len} bytes, past the end of the file ({} bytes): file truncated?",
                    fragments.len() + 1,
                    self.file_len
                ));
            }
            fragments.push((pos + 8, len));
            pos = end;
        }

        // Frame boundaries: Extended Offset Table, else Basic Offset Table, else one fragment per
        // frame, else JPEG start-of-image markers.
        let offsets: Option<Vec<u64>> = if let Some((eot, _)) = &self.extended_offset_table {
            Some(eot.clone())
        } else if bot_len > 0 {
            if bot_len as usize != 4 * n {
                return Err(format!("Basic Offset Table has {} entries but NumberOfFrames is {n}", bot_len / 4));
            }
            let mut raw = vec![0u8; bot_len as usize];
            self.read_at(bot_offset + 8, &mut raw).map_err(|e| format!("reading the Basic Offset Table: {e}"))?;
            Some(raw.chunks_exact(4).map(|c| u64::from(u32::from_le_bytes(c.try_into().unwrap()))).collect())
        } else {
            None
        };
        let mut first = Vec::with_capacity(n + 1);
        match offsets {
            Some(offsets) => {
                let mut k = 0;
                for (i, off) in offsets.iter().enumerate() {
                    let at = first_fragment + off;
                    while k < fragments.len() && fragments[k].0 - 8 < at {
                        k += 1;
                    }
                    if k == fragments.len() || fragments[k].0 - 8 != at {
                        return Err(format!(
                            "offset table entry for frame {} ({off}) points to byte {at}, which is not the start of \
                             a fragment (pixel data ends at byte {pos})",
                            i + 1
                        ));
                    }
                    first.push(k);
                }
            }
            None if fragments.len() == n => first.extend(0..n),
            None if n == 1 => first.push(0),
            None if self.jpeg => {
                for (k, &(off, len)) in fragments.iter().enumerate() {
                    let mut soi = [0u8; 2];
                    if len >= 2 {
                        self.read_at(off, &mut soi).map_err(|e| e.to_string())?;
                    }
                    if soi == [0xFF, 0xD8] {
                        first.push(k);
                    }
                }
                if first.len() != n {
                    return Err(format!("found {} JPEG frames in {} fragments but NumberOfFrames is {n}", first.len(), fragments.len()));
                }
            }
            None => {
                return Err(format!("{} fragments for {n} frames and no offset table to tell them apart", fragments.len()));
            }
        }
        if first.len() != n {
            return Err(format!("offset table lists {} frames but NumberOfFrames is {n}", first.len()));
        }
        if fragments.len() < n {
            return Err(format!("pixel data holds {} fragments but NumberOfFrames is {n}", fragments.len()));
        }
        first.push(fragments.len());
        Ok(FrameTable { fragments, first })
    }

    fn table(&self) -> Result<&FrameTable> {
        let PixelDataStart::Encapsulated(bot) = self.start else { unreachable!("native pixel data has no frame table") };
        self.table.get_or_init(|| self.build_table(bot)).as_ref().map_err(|problem| WsiError::pixel_data(self.location.clone(), problem.clone()))
    }
}

impl FrameSource for LocalFrames {
    fn frame_bytes(&self, index: u32) -> Result<Vec<u8>> {
        if index >= self.number_of_frames {
            return Err(WsiError::frame(self.location.clone(), index, format!("does not exist: the image has {} frames", self.number_of_frames)));
        }
        let io_err = |e: std::io::Error| WsiError::frame_io(self.location.clone(), index, format!("read failed: {e}"), e);
        match self.start {
            PixelDataStart::Native { offset, length } => {
                let len = self.native_frame_len;
                let at = offset + u64::from(index) * len;
                if u64::from(index + 1) * len > length || at + len > self.file_len {
                    return Err(WsiError::frame(
                        self.location.clone(),
                        index,
                        format!(
                            "needs bytes {at}..{} but the pixel data ({length} bytes declared) or the file ({} bytes) \
                             ends first: file truncated?",
                            at + len,
                            self.file_len
                        ),
                    ));
                }
                let mut buf = vec![0u8; len as usize];
                self.read_at(at, &mut buf).map_err(io_err)?;
                Ok(buf)
            }
            PixelDataStart::Encapsulated(_) => {
                let table = self.table()?;
                let frags = &table.fragments[table.first[index as usize]..table.first[index as usize + 1]];
                let total: usize = frags.iter().map(|f| f.1 as usize).sum();
                let mut buf = vec![0u8; total];
                let mut at = 0;
                for &(off, len) in frags {
                    self.read_at(off, &mut buf[at..at + len as usize]).map_err(io_err)?;
                    at += len as usize;
                }
                Ok(buf)
            }
        }
    }

    fn location(&self) -> &str {
        &self.location
    }
}
