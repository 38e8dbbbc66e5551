//! What a GIF's block structure says without decoding any pixels: its canvas size and whether
//! it has more than one frame. Mastodon turns animated GIFs into silent looping MP4s ("gifv")
//! and keeps a one-frame GIF as an image; telling them apart this way skips LZW decoding, which
//! for a large animation is most of the cost.

/// The logical screen (canvas) size from the header, or `None` when the header is short.
pub(crate) fn screen_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let width = u16::from_le_bytes([*bytes.get(6)?, *bytes.get(7)?]);
    let height = u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]);
    Some((u32::from(width), u32::from(height)))
}

/// Whether the GIF has at least two frames. A truncated or malformed file counts the frames
/// found before the damage; the decoder then decides whether what is left is usable.
pub(crate) fn is_animated(bytes: &[u8]) -> bool {
    frame_count(bytes, 2) >= 2
}

/// The number of image descriptors, counting no further than `stop_at`.
fn frame_count(bytes: &[u8], stop_at: usize) -> usize {
    let Some(&packed) = bytes.get(10) else {
        return 0;
    };
    // Header (6), logical screen descriptor (7), then the global colour table if flagged.
    let mut pos = 13 + colour_table_len(packed);
    let mut frames = 0;
    while frames < stop_at {
        match bytes.get(pos) {
            Some(0x21) => {
                // Extension: introducer, label, then data sub-blocks.
                pos = match skip_sub_blocks(bytes, pos + 2) {
                    Some(next) => next,
                    None => break,
                };
            }
            Some(0x2C) => {
                // Image descriptor (10 bytes), local colour table, LZW code size, sub-blocks.
                let Some(&packed) = bytes.get(pos + 9) else {
                    break;
                };
                frames += 1;
                pos = match skip_sub_blocks(bytes, pos + 10 + colour_table_len(packed) + 1) {
                    Some(next) => next,
                    None => break,
                };
            }
            // The trailer (0x3B), the end of the bytes, or something that is not a block.
            _ => break,
        }
    }
    frames
}

/// The size of a colour table flagged in a packed field: 3 × 2^(n+1) bytes when present.
fn colour_table_len(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}

/// The position after a chain of sub-blocks starting at `pos` (each a length byte and that many
/// bytes, ended by a zero length), or `None` when the chain runs past the end.
fn skip_sub_blocks(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = usize::from(*bytes.get(pos)?);
        pos += 1;
        if len == 0 {
            return Some(pos);
        }
        pos += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GIF built by hand: a 2×1 canvas with a two-colour global table and `frames` frames.
    fn gif(frames: usize) -> Vec<u8> {
        let mut b = b"GIF89a".to_vec();
        b.extend_from_slice(&[2, 0, 1, 0, 0x80, 0, 0]);
        b.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        for _ in 0..frames {
            b.extend_from_slice(&[0x21, 0xF9, 4, 0, 10, 0, 0, 0]);
            b.extend_from_slice(&[0x2C, 0, 0, 0, 0, 2, 0, 1, 0, 0]);
            b.extend_from_slice(&[2, 2, 0x44, 0x01, 0]);
        }
        b.push(0x3B);
        b
    }

    #[test]
    fn counts_frames_without_decoding() {
        assert_eq!(frame_count(&gif(1), 10), 1);
        assert_eq!(frame_count(&gif(3), 10), 3);
        assert!(!is_animated(&gif(1)));
        assert!(is_animated(&gif(2)));
        assert_eq!(screen_size(&gif(1)), Some((2, 1)));
    }

    #[test]
    fn truncated_gifs_count_what_is_there() {
        let two = gif(2);
        assert_eq!(frame_count(&two[..two.len() - 8], 10), 1);
        assert_eq!(frame_count(b"GIF89a", 10), 0);
        assert_eq!(screen_size(b"GIF89a\x01"), None);
    }
}
