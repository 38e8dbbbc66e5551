//! Whether a JPEG's bytes reach its end.
//!
//! The decoder the `image` crate uses is lenient: a JPEG cut off mid-upload decodes, with the
//! missing rows painted grey, and would be published that way. A complete JPEG ends its scans
//! with an EOI marker, and since entropy-coded data can never contain the bytes `FF D9`
//! (a data `FF` is always followed by `00`), finding EOI after the first scan's header is proof
//! enough that nothing was cut off.

/// Whether `bytes` hold a JPEG with an end-of-image marker after its first scan.
pub(crate) fn is_complete(bytes: &[u8]) -> bool {
    // Searched from the end, where EOI sits in all but damaged files.
    let ends = |start: usize| bytes[start..].windows(2).rev().any(|w| w == [0xFF, 0xD9]);
    first_scan_data(bytes).is_some_and(ends)
}

/// The offset where the first scan's entropy-coded data begins: after SOI, the segments before
/// SOS (each a marker and a big-endian length that counts itself), and the SOS header.
fn first_scan_data(bytes: &[u8]) -> Option<usize> {
    let mut pos = 2; // SOI
    loop {
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        match marker {
            // Fill bytes before a marker.
            0xFF => pos += 1,
            // Markers without a length: TEM and RSTn.
            0x01 | 0xD0..=0xD7 => pos += 2,
            // EOI before any scan: no image data at all.
            0xD9 => return None,
            _ => {
                let length = usize::from(u16::from_be_bytes([
                    *bytes.get(pos + 2)?,
                    *bytes.get(pos + 3)?,
                ]));
                let next = pos + 2 + length;
                if marker == 0xDA {
                    return (next <= bytes.len()).then_some(next);
                }
                pos = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_cut_jpegs() {
        // SOI, a comment holding FF D9, SOS with a minimal header, data with a stuffed FF, EOI.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x04, 0xFF, 0xD9];
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, 0x01, 0x12, 0xFF, 0x00, 0x34]);
        assert!(!is_complete(&jpeg), "the comment's FF D9 is not an end");
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        assert!(is_complete(&jpeg));
        assert!(!is_complete(&jpeg[..jpeg.len() - 1]));
        assert!(!is_complete(&[0xFF, 0xD8, 0xFF]));
    }
}
