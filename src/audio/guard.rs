//! The lengths an audio file declares for its tags, checked before symphonia reads them.
//!
//! symphonia 0.5 allocates the length a file declares for a Vorbis comment, a FLAC picture, an
//! ID3v2 frame or a RIFF INFO value before it reads the value: a 421-byte FLAC file asked for
//! 3.6 GB (found by the `audio_file` fuzzer, docs/FUZZING.md; upstream: pdeljanov/Symphonia
//! issues 508 and 539). Where memory is short the allocation fails, and a failed allocation
//! aborts the process. So before symphonia opens a file:
//! - the stream is found as symphonia's probe finds it (the earliest marker within 1 MiB), and
//!   the reader is shown the file from there on ([`AudioWindow`]): ID3v2 tags before it are
//!   stepped over, never read (tags are not used here), but must fit in the file;
//! - FLAC: every metadata block must fit in the file; Vorbis comments and pictures must fit in
//!   their blocks (a picture inside a comment too);
//! - Ogg: the same for the comment headers of Vorbis, Opus and Ogg FLAC streams;
//! - RIFF WAVE: every chunk before the data must fit in the file.
//!
//! A file that breaks one of these is refused, with where and what; a valid file never does.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// symphonia 0.5 refuses an Ogg packet over 16 MiB (`LogicalStream::MAX_PACKET_LEN`); comment
/// headers are looked for in this much of an Ogg file's start (a whole 16 MiB packet and its
/// page headers). A comment header further on (a second logical stream's, after the first's
/// audio) is not checked.
const OGG_HEADER_BYTES: u64 = 17 << 20;

/// How far symphonia's probe looks for a stream's first marker (its PROBE_SEARCH_LIMIT).
const PROBE_WINDOW: u64 = 1 << 20;

/// What starts at a place in the file, as symphonia's probe (with this crate's formats) tells.
#[derive(Debug, PartialEq)]
enum Marker {
    Id3,
    Flac,
    Ogg,
    Riff,
    Mpeg,
}

/// The first place at or after `from`, within the probe's window, where a stream or tag
/// starts, as symphonia's probe finds it: byte by byte, the earliest marker wins (so junk
/// before a stream is stepped over).
fn first_marker(file: &File, from: u64, len: u64) -> Result<Option<(u64, Marker)>, String> {
    let window = read_at(file, from, (PROBE_WINDOW + 16).min(len - from))?;
    for i in 0..window.len().min(PROBE_WINDOW as usize) {
        let w = &window[i..];
        let marker = match w {
            [b'I', b'D', b'3', ..] => Marker::Id3,
            [b'f', b'L', b'a', b'C', ..] => Marker::Flac,
            [b'O', b'g', b'g', b'S', ..] => Marker::Ogg,
            [b'R', b'I', b'F', b'F', ..] => Marker::Riff,
            // symphonia's MP3 frame markers (MPEG 1, 2 and 2.5, with and without CRC).
            [0xFF, 0xFA | 0xFB | 0xF2 | 0xF3 | 0xE2 | 0xE3, ..] => Marker::Mpeg,
            _ => continue,
        };
        return Ok(Some((from + i as u64, marker)));
    }
    Ok(None)
}

/// Checks `file` (`len` bytes) as above; the offset symphonia is to read it from (its stream's
/// first marker, after any ID3v2 tags), or what is wrong.
pub fn check(file: &File, len: u64) -> Result<u64, String> {
    let mut at = 0u64;
    loop {
        let Some((start, marker)) = first_marker(file, at, len)? else {
            return Ok(at); // symphonia finds no stream either, and says so
        };
        match marker {
            // "ID3", version, revision, flags, a 28-bit size (7 bits a byte), a 10-byte footer
            // when flag 0x10 is set.
            Marker::Id3 => {
                let head = read_at(file, start, 10.min(len - start))?;
                if head.len() < 10 || head[6..10].iter().any(|b| b & 0x80 != 0) {
                    return Err(format!("the ID3v2 tag at byte {start} has a malformed header"));
                }
                let size = head[6..10].iter().fold(0u64, |s, b| (s << 7) | u64::from(*b));
                let end = start + 10 + size + if head[5] & 0x10 != 0 { 10 } else { 0 };
                if end > len {
                    return Err(format!("the ID3v2 tag at byte {start} claims {size} bytes, past the end of the file ({len} bytes): truncated or corrupt"));
                }
                at = end;
                continue;
            }
            Marker::Flac => flac(file, start + 4, len)?,
            Marker::Ogg => ogg(&read_at(file, start, OGG_HEADER_BYTES.min(len - start))?)?,
            Marker::Riff => riff(file, start, len)?,
            Marker::Mpeg => {} // symphonia's MP3 reader reads no tags
        }
        return Ok(start);
    }
}

fn read_at(mut file: &File, offset: u64, n: u64) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("cannot read: {e}");
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = Vec::with_capacity(n as usize);
    file.take(n).read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}

/// FLAC metadata blocks from `at`: a header byte (last-block flag, type), a 24-bit length.
fn flac(file: &File, mut at: u64, len: u64) -> Result<(), String> {
    for n in 1.. {
        let head = read_at(file, at, 4.min(len - at))?;
        if head.len() < 4 {
            return Ok(()); // symphonia reports the cut-off header
        }
        let (last, kind) = (head[0] & 0x80 != 0, head[0] & 0x7F);
        let size = u64::from(head[1]) << 16 | u64::from(head[2]) << 8 | u64::from(head[3]);
        let body = at + 4;
        if body + size > len {
            return Err(format!(
                "the file ends inside its header (truncated or corrupt): FLAC metadata block {n} (at byte {at}) claims {size} bytes, {} are left",
                len - body
            ));
        }
        match kind {
            4 => comment(&read_at(file, body, size)?).map_err(|e| format!("FLAC metadata block {n} (at byte {at}), a Vorbis comment: {e}"))?,
            6 => picture(&read_at(file, body, size)?).map_err(|e| format!("FLAC metadata block {n} (at byte {at}), a picture: {e}"))?,
            _ => {}
        }
        if last {
            return Ok(());
        }
        at = body + size;
    }
    Ok(())
}

/// The Ogg header packets in `bytes` (the file's start): each logical stream's Vorbis or Opus
/// comment header, and Ogg FLAC's metadata packets.
fn ogg(bytes: &[u8]) -> Result<(), String> {
    use std::collections::HashMap;
    // Per stream serial: the packet being assembled, packets completed.
    let mut streams: HashMap<u32, (Vec<u8>, usize, bool)> = HashMap::new();
    let mut at = 0usize;
    while let Some(page) = bytes.get(at..at + 27).filter(|p| &p[..4] == b"OggS") {
        let serial = u32::from_le_bytes([page[14], page[15], page[16], page[17]]);
        let segments = usize::from(page[26]);
        let Some(table) = bytes.get(at + 27..at + 27 + segments) else { break };
        let mut data = at + 27 + segments;
        let (packet, count, is_flac) = streams.entry(serial).or_default();
        for &lace in table {
            let Some(piece) = bytes.get(data..data + usize::from(lace)) else { return Ok(()) };
            packet.extend_from_slice(piece);
            data += usize::from(lace);
            if lace < 255 {
                *count += 1;
                if *count == 1 {
                    *is_flac = packet.starts_with(b"\x7FFLAC");
                }
                header_packet(packet, *is_flac).map_err(|e| format!("Ogg stream {serial:#x}, packet {count}: {e}"))?;
                packet.clear();
            }
        }
        at = data;
    }
    Ok(())
}

fn header_packet(p: &[u8], is_flac: bool) -> Result<(), String> {
    if let Some(rest) = p.strip_prefix(b"\x03vorbis").or_else(|| p.strip_prefix(b"OpusTags")) {
        return comment(rest).map_err(|e| format!("a comment header: {e}"));
    }
    if is_flac && p.len() >= 4 {
        match p[0] & 0x7F {
            4 => return comment(&p[4..]).map_err(|e| format!("a Vorbis comment: {e}")),
            6 => return picture(&p[4..]).map_err(|e| format!("a picture: {e}")),
            _ => {}
        }
    }
    Ok(())
}

/// Reads big- or little-endian u32 lengths off the front of a slice, each checked against
/// what is left.
struct Fields<'a>(&'a [u8], bool);

impl<'a> Fields<'a> {
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b: [u8; 4] = self.0.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| format!("{what} is cut off"))?;
        self.0 = &self.0[4..];
        Ok(if self.1 { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    /// A length, then that many bytes.
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)? as usize;
        if n > self.0.len() {
            return Err(format!("{what} claims {n} bytes, only {} are left", self.0.len()));
        }
        let (value, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(value)
    }
}

/// A Vorbis comment (little-endian): vendor string, count, comments. A comment holding a
/// picture (METADATA_BLOCK_PICTURE, base64) is checked as a picture.
fn comment(body: &[u8]) -> Result<(), String> {
    let mut f = Fields(body, false);
    f.bytes("the vendor string")?;
    let n = f.u32("the comment count")?;
    for i in 0..n {
        let c = f.bytes(&format!("comment {}", i + 1))?;
        let Some(eq) = c.iter().position(|b| *b == b'=') else { continue };
        if c[..eq].eq_ignore_ascii_case(b"METADATA_BLOCK_PICTURE") {
            use base64::Engine as _;
            // symphonia skips a picture that is not valid base64.
            if let Ok(block) = base64::engine::general_purpose::STANDARD.decode(&c[eq + 1..]) {
                picture(&block).map_err(|e| format!("comment {}, a picture: {e}", i + 1))?;
            }
        }
    }
    Ok(())
}

/// A FLAC picture block (big-endian): type, media type, description, size and colours, data.
fn picture(body: &[u8]) -> Result<(), String> {
    let mut f = Fields(body, true);
    f.u32("the picture type")?;
    f.bytes("the media type")?;
    f.bytes("the description")?;
    for what in ["the width", "the height", "the colour depth", "the palette size"] {
        f.u32(what)?;
    }
    f.bytes("the picture data")?;
    Ok(())
}

/// RIFF chunks from `start + 12` up to the data chunk: each must fit in the file.
fn riff(file: &File, start: u64, len: u64) -> Result<(), String> {
    let mut at = start + 12;
    while at + 8 <= len {
        let head = read_at(file, at, 8)?;
        let size = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        if &head[..4] == b"data" {
            return Ok(()); // a short data chunk is a truncated recording, reported as such later
        }
        if at + 8 + size > len {
            let id = String::from_utf8_lossy(&head[..4]).into_owned();
            return Err(format!(
                "the file ends inside its header (truncated or corrupt): the WAV chunk {id:?} at byte {at} claims {size} bytes, {} are left",
                len - at - 8
            ));
        }
        at += 8 + size + (size & 1);
    }
    Ok(())
}

/// A file from `start` on, as a media source: what symphonia reads after [`check`].
pub struct AudioWindow {
    file: File,
    start: u64,
    len: u64,
}

impl AudioWindow {
    /// `file` (`len` bytes) from byte `start`.
    pub fn new(mut file: File, start: u64, len: u64) -> std::io::Result<Self> {
        file.seek(SeekFrom::Start(start))?;
        Ok(AudioWindow { file, start, len })
    }
}

impl Read for AudioWindow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for AudioWindow {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let pos = match pos {
            SeekFrom::Start(p) => SeekFrom::Start(self.start.saturating_add(p)),
            SeekFrom::End(d) => SeekFrom::End(d),
            SeekFrom::Current(d) => SeekFrom::Current(d),
        };
        let abs = self.file.seek(pos)?;
        if abs < self.start {
            self.file.seek(SeekFrom::Start(self.start))?;
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the audio stream's start"));
        }
        Ok(abs - self.start)
    }
}

impl symphonia::core::io::MediaSource for AudioWindow {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len - self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8]) -> (File, u64) {
        let path = std::env::temp_dir().join(format!("haidef-audio-guard-{}-{}", std::process::id(), bytes.len()));
        std::fs::write(&path, bytes).unwrap();
        let f = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (f, bytes.len() as u64)
    }

    fn check_bytes(bytes: &[u8]) -> Result<u64, String> {
        let (f, len) = file(bytes);
        check(&f, len)
    }

    /// A Vorbis comment: vendor, then comments (little-endian lengths).
    fn vorbis_comment(vendor: &[u8], comments: &[&[u8]]) -> Vec<u8> {
        let mut v = (vendor.len() as u32).to_le_bytes().to_vec();
        v.extend(vendor);
        v.extend((comments.len() as u32).to_le_bytes());
        for c in comments {
            v.extend((c.len() as u32).to_le_bytes());
            v.extend(*c);
        }
        v
    }

    fn flac_with(blocks: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut v = b"fLaC".to_vec();
        for (i, (kind, body)) in blocks.iter().enumerate() {
            let last = if i + 1 == blocks.len() { 0x80 } else { 0 };
            v.push(last | kind);
            v.extend(&(body.len() as u32).to_be_bytes()[1..]);
            v.extend(body);
        }
        v
    }

    #[test]
    fn declared_lengths_past_their_bounds_are_refused_with_where() {
        let streaminfo = (0u8, vec![0u8; 34]);
        let good = flac_with(&[streaminfo.clone(), (4, vorbis_comment(b"ref", &[b"TITLE=x"]))]);
        assert_eq!(check_bytes(&good), Ok(0));
        // The fuzzer's case: a comment claiming 3.6 GB in a block of a few bytes.
        let mut huge = vorbis_comment(b"ref", &[b"TITLE=x"]);
        huge[11..15].copy_from_slice(&0xD900_0000u32.to_le_bytes());
        let e = check_bytes(&flac_with(&[streaminfo.clone(), (4, huge)])).unwrap_err();
        assert!(e.contains("FLAC metadata block 2") && e.contains("comment 1 claims 3640655872 bytes"), "{e}");
        // A picture whose data length runs past its block, inside a comment too.
        let mut pic = 3u32.to_be_bytes().to_vec();
        pic.extend(9u32.to_be_bytes());
        pic.extend(b"image/png");
        pic.extend(0u32.to_be_bytes());
        pic.extend([0u8; 16]);
        pic.extend(u32::MAX.to_be_bytes());
        let e = check_bytes(&flac_with(&[streaminfo.clone(), (6, pic.clone())])).unwrap_err();
        assert!(e.contains("a picture: the picture data claims 4294967295 bytes"), "{e}");
        use base64::Engine as _;
        let in_comment = format!("METADATA_BLOCK_PICTURE={}", base64::engine::general_purpose::STANDARD.encode(&pic));
        let e = check_bytes(&flac_with(&[streaminfo.clone(), (4, vorbis_comment(b"", &[in_comment.as_bytes()]))])).unwrap_err();
        assert!(e.contains("comment 1, a picture"), "{e}");
        // A block past the end of the file.
        let mut cut = flac_with(&[streaminfo, (1, vec![0u8; 100])]);
        cut.truncate(cut.len() - 50);
        let e = check_bytes(&cut).unwrap_err();
        assert!(e.contains("ends inside its header") && e.contains("block 2 (at byte 42) claims 100 bytes, 50 are left"), "{e}");
        // RIFF: a LIST chunk claiming 4 GB before the data.
        let mut wav = b"RIFF\xff\xff\xff\xffWAVEfmt \x10\0\0\0".to_vec();
        wav.extend([1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0]);
        wav.extend(b"LIST\xff\xff\xff\xffINFO");
        let e = check_bytes(&wav).unwrap_err();
        assert!(e.contains("\"LIST\" at byte 36 claims 4294967295 bytes"), "{e}");
    }

    #[test]
    fn ogg_comment_headers_are_checked_across_pages() {
        // One Vorbis stream: identification packet, then a comment packet split over two pages.
        let page = |serial: u32, packets: &[&[u8]], continued_last: bool| {
            let mut table: Vec<u8> = Vec::new();
            let mut data: Vec<u8> = Vec::new();
            for (i, p) in packets.iter().enumerate() {
                let mut n = p.len();
                while n >= 255 {
                    table.push(255u8);
                    n -= 255;
                }
                if !(continued_last && i + 1 == packets.len()) {
                    table.push(n as u8);
                }
                data.extend(*p);
            }
            let mut v = b"OggS\0\0".to_vec();
            v.extend([0u8; 8]);
            v.extend(serial.to_le_bytes());
            v.extend([0u8; 8]);
            v.push(table.len() as u8);
            v.extend(table);
            v.extend(data);
            v
        };
        let mut bad = b"\x03vorbis".to_vec();
        bad.extend(vorbis_comment(b"ref", &[b"A=1"]));
        bad.extend([0u8; 300]);
        let at = 7 + 4 + 3 + 4;
        bad[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        let (first, second) = bad.split_at(255);
        let mut ogg = page(7, &[b"\x01vorbis-identification"], false);
        ogg.extend(page(7, &[first], true));
        ogg.extend(page(7, &[second], false));
        let e = check_bytes(&ogg).unwrap_err();
        assert!(e.contains("Ogg stream 0x7, packet 2: a comment header: comment 1 claims 2147483647 bytes"), "{e}");
        bad[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
        let (first, second) = bad.split_at(255);
        let mut ogg = page(7, &[b"\x01vorbis-identification"], false);
        ogg.extend(page(7, &[first], true));
        ogg.extend(page(7, &[second], false));
        assert_eq!(check_bytes(&ogg), Ok(0));
    }

    #[test]
    fn id3_tags_are_stepped_over_and_must_fit() {
        let mut v = b"ID3\x03\0\0\0\0\0\x05abcde\0\0".to_vec();
        v.extend([0xFF, 0xFB, 0x90, 0x00]);
        assert_eq!(check_bytes(&v), Ok(17));
        let e = check_bytes(b"ID3\x03\0\0\x7f\x7f\x7f\x7fabc").unwrap_err();
        assert!(e.contains("ID3v2 tag at byte 0 claims 268435455 bytes"), "{e}");
        // Junk before a stream: the probe's first marker (here after a tag), as symphonia finds it.
        let mut junk = b"ID3\x03\0\0\0\0\0\x01xjunk\xff\x00".to_vec();
        junk.extend(flac_with(&[(0, vec![0u8; 34]), (6, vec![0u8; 3])]));
        let e = check_bytes(&junk).unwrap_err();
        assert!(e.contains("FLAC metadata block 2 (at byte 59), a picture: the picture type is cut off"), "{e}");
    }
}
