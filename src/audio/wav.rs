//! The WAV files symphonia refuses but scipy (Google's HeAR serving reader) reads: big-endian
//! RIFX, RF64/BW64 (64-bit sizes), integer PCM whose bits per sample are not a multiple of 8
//! (12 bits in 2 bytes, 20 in 3, …: the WAV format left-justifies them, so they scale as their
//! container) or wider than 32 bits (5 to 8 bytes), and RIFF sizes that disagree with the
//! chunks they hold. Hand-written because no maintained crate reads these (symphonia 0.5 and
//! 0.6 stop at each, hound too); it takes integer PCM and IEEE float, nothing compressed.
//! A data chunk that runs past the end of the file is refused as truncated.

/// A decoded WAV file: interleaved samples at full scale ±1.
#[derive(Debug)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: usize,
    /// `frames × channels` samples.
    pub samples: Vec<f32>,
}

/// Whether `magic` (the first 4 bytes) starts a WAV container this module reads.
pub fn is_wav_magic(magic: &[u8]) -> bool {
    matches!(magic, b"RIFF" | b"RIFX" | b"RF64" | b"BW64")
}

/// Decodes `bytes`, refusing recordings longer than `max_seconds`. Errors say what is wrong.
pub fn decode(bytes: &[u8], max_seconds: f64) -> Result<Wav, String> {
    let magic = bytes.get(..4).ok_or("shorter than a WAV header")?;
    let big = magic == b"RIFX";
    if !is_wav_magic(magic) || bytes.get(8..12) != Some(b"WAVE".as_slice()) {
        return Err("not a RIFF/RIFX/RF64 WAVE file".into());
    }
    let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| if big { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) });
    let u32_at = |o: usize| {
        bytes.get(o..o + 4).map(|b| {
            let a = [b[0], b[1], b[2], b[3]];
            if big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
    };
    let (mut fmt, mut data, mut ds64_data) = (None, None, None);
    let mut at = 12;
    while bytes.len().saturating_sub(at) >= 8 {
        let id = &bytes[at..at + 4];
        let size = u64::from(u32_at(at + 4).ok_or("chunk header cut off")?);
        let body = at + 8;
        match id {
            b"ds64" => ds64_data = bytes.get(body + 8..body + 16).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            b"fmt " => fmt = Some(body),
            b"data" => {
                let size = if size == 0xFFFF_FFFF { ds64_data.ok_or("RF64 data chunk without a ds64 size")? } else { size };
                data = Some((body, size));
                break;
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(usize::try_from(size + (size & 1)).map_err(|_| "chunk size overflows")?);
    }
    let f = fmt.ok_or("no fmt chunk")?;
    let (body, size) = data.ok_or("no data chunk (the file ends inside its header)")?;
    let mut tag = u16_at(f).ok_or("fmt chunk cut off")?;
    let channels = usize::from(u16_at(f + 2).ok_or("fmt chunk cut off")?);
    let sample_rate = u32_at(f + 4).ok_or("fmt chunk cut off")?;
    let block_align = usize::from(u16_at(f + 12).ok_or("fmt chunk cut off")?);
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the real tag, a 32-bit word
        // in the file's byte order.
        tag = u16::try_from(u32_at(f + 24).ok_or("extensible fmt chunk cut off")?).unwrap_or(u16::MAX);
    }
    if channels == 0 || sample_rate == 0 || block_align == 0 || block_align % channels != 0 {
        return Err(format!("inconsistent fmt chunk: {channels} channels, {sample_rate} Hz, {block_align} bytes per frame"));
    }
    let width = block_align / channels;
    let float = match (tag, width) {
        (1, 1..=8) => false,
        (3, 4 | 8) => true,
        _ => return Err(format!("format tag {tag:#06x} with {width}-byte samples; only integer PCM (1 to 8 bytes) and IEEE float (4 or 8 bytes) are read")),
    };
    let present = bytes.len().saturating_sub(body) as u64;
    if size > present {
        return Err(format!("truncated: the data chunk announces {} frames, the file holds {}", size / block_align as u64, present / block_align as u64));
    }
    let frames = size / block_align as u64;
    let seconds = frames as f64 / f64::from(sample_rate);
    if seconds > max_seconds {
        return Err(format!("{seconds:.1} s long; at most {max_seconds} s are read (the whole recording is resampled at once); split it or raise the limit"));
    }
    let raw = &bytes[body..body + (frames as usize) * block_align];
    let samples = raw
        .chunks_exact(width)
        .map(|b| {
            let mut v = [0u8; 8];
            // Into the top bytes of a big-endian u64, so that integers keep their sign and scale
            // as their container (the WAV format left-justifies narrower samples).
            for (i, byte) in b.iter().enumerate() {
                v[if big { i } else { width - 1 - i }] = *byte;
            }
            let word = u64::from_be_bytes(v);
            match (float, width) {
                (true, 4) => f32::from_bits((word >> 32) as u32),
                (true, _) => f64::from_bits(word) as f32,
                (false, 1) => (f64::from((word >> 56) as u8) - 128.0) as f32 / 128.0,
                (false, _) => ((word as i64) as f64 / 9_223_372_036_854_775_808.0) as f32,
            }
        })
        .collect();
    Ok(Wav { sample_rate, channels, samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(magic: &[u8; 4], big: bool, tag: u16, channels: u16, bits: u16, width: u16, data: &[u8]) -> Vec<u8> {
        type Writers = (fn(u16) -> [u8; 2], fn(u32) -> [u8; 4]);
        let (w16, w32): Writers = if big { (u16::to_be_bytes, u32::to_be_bytes) } else { (u16::to_le_bytes, u32::to_le_bytes) };
        let mut v = magic.to_vec();
        v.extend(w32(36 + data.len() as u32));
        v.extend(b"WAVEfmt ");
        v.extend(w32(16));
        v.extend(w16(tag));
        v.extend(w16(channels));
        v.extend(w32(8000));
        v.extend(w32(8000 * u32::from(channels * width)));
        v.extend(w16(channels * width));
        v.extend(w16(bits));
        v.extend(b"data");
        v.extend(w32(data.len() as u32));
        v.extend(data);
        v
    }

    #[test]
    fn integers_scale_as_their_container_in_either_byte_order() {
        // 12-bit samples left-justified in 2 bytes: 0x7FF0 is just under full scale.
        let le = decode(&wav(b"RIFF", false, 1, 1, 12, 2, &[0xF0, 0x7F, 0x00, 0x80]), 10.0).unwrap();
        assert_eq!(le.samples, vec![0x7FF0 as f32 / 32768.0, -1.0]);
        let be = decode(&wav(b"RIFX", true, 1, 1, 12, 2, &[0x7F, 0xF0, 0x80, 0x00]), 10.0).unwrap();
        assert_eq!(be.samples, le.samples);
        // 24-bit, 2 channels; unsigned 8-bit.
        let s = decode(&wav(b"RIFF", false, 1, 2, 24, 3, &[0, 0, 0x40, 0, 0, 0xC0]), 10.0).unwrap();
        assert_eq!((s.channels, s.samples.clone()), (2, vec![0.5, -0.5]));
        assert_eq!(decode(&wav(b"RIFF", false, 1, 1, 8, 1, &[0, 128, 192]), 10.0).unwrap().samples, vec![-1.0, 0.0, 0.5]);
        // Float, big-endian.
        let f = decode(&wav(b"RIFX", true, 3, 1, 32, 4, &0.25f32.to_be_bytes()), 10.0).unwrap();
        assert_eq!(f.samples, vec![0.25]);
    }

    #[test]
    fn truncation_and_odd_formats_are_errors() {
        let mut v = wav(b"RIFF", false, 1, 1, 16, 2, &[0; 8]);
        v.truncate(v.len() - 4);
        assert!(decode(&v, 10.0).unwrap_err().contains("truncated: the data chunk announces 4 frames, the file holds 2"));
        assert!(decode(&wav(b"RIFF", false, 7, 1, 8, 1, &[0; 4]), 10.0).unwrap_err().contains("format tag 0x0007"));
        assert!(decode(&wav(b"RIFF", false, 1, 1, 16, 2, &[0; 8]), 1e-4).unwrap_err().contains("at most 0.0001 s"));
        assert!(decode(b"RIFF\0\0\0\0WAVE", 10.0).unwrap_err().contains("no fmt chunk"));
        assert!(decode(b"RIF", 10.0).is_err());
    }
}
