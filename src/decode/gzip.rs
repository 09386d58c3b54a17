//! Gzip (Firehose GZIP): every member of a concatenated stream, damage located and survived.

use std::io::Read;
use std::ops::Range;

use super::inflate::{Inflated, Inflater};
use crate::model::Position;
use crate::quarantine::{BadRecord, Raw, Reason};

/// Decompressed bytes plus the damage met on the way.
pub struct Gunzipped {
    pub data: Vec<u8>,
    /// Object-level problems (truncated or corrupt members).
    pub damage: Vec<BadRecord>,
    /// Where the output of a damaged member stops, in order.
    pub cuts: Vec<Cut>,
}

/// The end of a damaged member's output in [`Gunzipped::data`].
#[derive(Clone, Debug, PartialEq)]
pub struct Cut {
    /// Offset in `data` where the member's output stops: a partial last line there is not a
    /// record but part of the damage.
    pub at: usize,
    /// The reason for what the damage cut off.
    pub reason: Reason,
    /// Where the member's output starts when the member failed its integrity check (a bad
    /// CRC or deflate data): everything from here to `at` is untrusted. `None` when the member
    /// was merely cut short (what it produced before the cut is as written).
    pub untrusted_from: Option<usize>,
}

impl Gunzipped {
    /// The ranges of `data` produced by members that failed their integrity check.
    pub fn untrusted(&self) -> Vec<Range<usize>> {
        self.cuts
            .iter()
            .filter_map(|c| c.untrusted_from.map(|from| from..c.at))
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// Whether the bytes start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// The output room to start with: the size the last member's trailer states (the whole
/// output of a single-member object), but between 4 and 16 times the input, since a trailer
/// may lie, and never above `max_out`.
fn first_room(bytes: &[u8], max_out: usize) -> usize {
    let stated = match bytes.len().checked_sub(4) {
        Some(at) => u32::from_le_bytes(bytes[at..].try_into().expect("4 bytes")) as usize,
        None => 0,
    };
    let (low, high) = (
        bytes.len().saturating_mul(4),
        bytes.len().saturating_mul(16),
    );
    stated.max(low).min(high).min(max_out)
}

/// Decompresses every member; on a damaged member keeps what it produced (marked untrusted
/// when the member is corrupt rather than cut short), records the damage, and resynchronises
/// at the next member header.
pub fn gunzip(bytes: &[u8], max_out: usize) -> Gunzipped {
    match whole(bytes, max_out) {
        Some(data) => Gunzipped {
            data,
            damage: Vec::new(),
            cuts: Vec::new(),
        },
        None => streamed(bytes, max_out),
    }
}

/// The fast path: every member decoded whole by libdeflate, or `None` when a member is
/// damaged, the output would pass `max_out`, or anything else the stream decoder alone
/// describes. What it accepts, [`streamed`] decodes to the same bytes with no damage.
fn whole(bytes: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut inflater = Inflater::new();
    let mut data = Vec::with_capacity(first_room(bytes, max_out));
    let mut pos = 0usize;
    while pos < bytes.len() {
        // libdeflate skips a header CRC without checking it; the stream decoder checks it.
        if bytes.get(pos + 3).is_some_and(|flags| flags & FHCRC != 0) {
            return None;
        }
        let room = data.capacity().min(max_out) - data.len();
        match inflater.gzip_member(&bytes[pos..], &mut data, room) {
            Inflated::Done { read } => pos += read,
            Inflated::NoRoom if data.capacity() < max_out => {
                let want = data.capacity().saturating_mul(2).max(4096).min(max_out);
                data.reserve(want - data.len());
            }
            Inflated::NoRoom | Inflated::Bad => return None,
        }
        // Trailing zero padding after the last member is tolerated.
        if bytes[pos..].iter().all(|&b| b == 0) {
            break;
        }
    }
    Some(data)
}

/// The gzip header flag of a CRC-16 of the header.
const FHCRC: u8 = 0x02;

/// The stream decoder, member by member, for objects the fast path refuses.
fn streamed(bytes: &[u8], max_out: usize) -> Gunzipped {
    let mut out = Gunzipped {
        data: Vec::with_capacity(first_room(bytes, max_out)),
        damage: Vec::new(),
        cuts: Vec::new(),
    };
    let mut pos = 0usize;
    while pos < bytes.len() {
        let mut input = &bytes[pos..];
        let before = input.len();
        let start_len = out.data.len();
        let mut dec = flate2::bufread::GzDecoder::new(&mut input);
        let budget = (max_out.saturating_sub(start_len) as u64).saturating_add(1);
        let res = (&mut dec).take(budget).read_to_end(&mut out.data);
        drop(dec);
        let consumed = before - input.len();
        match res {
            Ok(_) if out.data.len() > max_out => {
                out.data.truncate(max_out);
                out.cuts.push(Cut {
                    at: out.data.len(),
                    reason: Reason::CorruptObject,
                    untrusted_from: None,
                });
                out.damage.push(damage(
                    Reason::CorruptObject,
                    format!("decompressed size exceeds the limit of {max_out} bytes"),
                    pos,
                ));
                return out;
            }
            Ok(_) if consumed == 0 => break,
            Ok(_) => pos += consumed,
            Err(e) => {
                let truncated = e.kind() == std::io::ErrorKind::UnexpectedEof;
                let (reason, what, untrusted_from) = if truncated {
                    (Reason::TruncatedObject, "gzip member ends early", None)
                } else {
                    (
                        Reason::CorruptObject,
                        "corrupt gzip member (its output is quarantined, not written)",
                        Some(start_len),
                    )
                };
                out.cuts.push(Cut {
                    at: out.data.len(),
                    reason,
                    untrusted_from,
                });
                out.damage
                    .push(damage(reason, format!("{what} at byte {pos}: {e}"), pos));
                match next_member(bytes, pos + 1) {
                    Some(next) => pos = next,
                    None => break,
                }
            }
        }
        // Trailing zero padding after the last member is tolerated.
        if bytes[pos..].iter().all(|&b| b == 0) {
            break;
        }
    }
    out
}

fn damage(reason: Reason, message: String, offset: usize) -> BadRecord {
    BadRecord {
        reason,
        message,
        position: Position {
            byte_offset: Some(offset as u64),
            ..Default::default()
        },
        tenant: None,
        raw: Raw::None,
        object_level: true,
    }
}

/// The offset of the next gzip member header (`1f 8b 08`) at or after `from`.
fn next_member(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + 3 <= bytes.len() {
        let i = memchr::memchr(0x1f, &bytes[at..])? + at;
        if bytes.get(i + 1) == Some(&0x8b) && bytes.get(i + 2) == Some(&0x08) {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    pub fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn multi_member_and_damage() {
        let mut all = gz(b"a\n");
        all.extend(gz(b"b\n"));
        let out = gunzip(&all, 1 << 20);
        assert_eq!(out.data, b"a\nb\n");
        assert!(out.damage.is_empty());
        assert!(out.cuts.is_empty());

        let mut broken = gz(b"a\n");
        let mut mid = gz(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
        let n = mid.len();
        mid[n - 6] ^= 0xff; // corrupt the CRC
        broken.extend(mid);
        broken.extend(gz(b"c\n"));
        let out = gunzip(&broken, 1 << 20);
        assert_eq!(out.data, b"a\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nc\n");
        assert_eq!(out.damage.len(), 1);
        assert_eq!(out.damage[0].reason, Reason::CorruptObject);
        assert_eq!(
            out.damage[0].position.byte_offset,
            Some(gz(b"a\n").len() as u64)
        );
        assert_eq!(
            out.cuts,
            vec![Cut {
                at: 42,
                reason: Reason::CorruptObject,
                untrusted_from: Some(2)
            }]
        );
        assert_eq!(out.untrusted(), vec![2..42]);

        let whole = gz(b"line one\nline two\n");
        let out = gunzip(&whole[..whole.len() - 10], 1 << 20);
        assert_eq!(out.damage[0].reason, Reason::TruncatedObject);
        assert_eq!(out.cuts[0].untrusted_from, None);
        assert!(out.untrusted().is_empty());
    }

    /// Every object the fast path takes decodes the same on the stream path, without damage;
    /// every damaged one is left to the stream path.
    #[test]
    fn the_fast_path_takes_only_what_the_stream_path_decodes_whole() {
        let text: Vec<u8> = (0..3000u32)
            .flat_map(|i| format!("{i} line\n").into_bytes())
            .collect();
        let one = gz(&text);
        let mut two = gz(b"first\n");
        two.extend(&one);
        let mut padded = two.clone();
        padded.extend([0u8; 9]);
        let mut garbage = one.clone();
        garbage.extend(b"junk");
        let mut crc = two.clone();
        let n = crc.len();
        crc[n - 6] ^= 1;
        let stored = {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::none());
            e.write_all(&text).unwrap();
            e.finish().unwrap()
        };
        // A header CRC (FHCRC) that does not match the header.
        let mut hcrc = one[..10].to_vec();
        hcrc[3] |= FHCRC;
        hcrc.extend([0xde, 0xad]);
        hcrc.extend(&one[10..]);
        let cases: Vec<(&str, &[u8], usize, bool)> = vec![
            ("one member", &one, 1 << 20, true),
            ("two members", &two, 1 << 20, true),
            ("zero padding", &padded, 1 << 20, true),
            ("stored blocks", &stored, 1 << 20, true),
            ("output exactly at the limit", &one, text.len(), true),
            ("output one past the limit", &one, text.len() - 1, false),
            ("trailing garbage", &garbage, 1 << 20, false),
            ("bad CRC", &crc, 1 << 20, false),
            ("cut short", &one[..one.len() - 3], 1 << 20, false),
            ("header CRC that does not match", &hcrc, 1 << 20, false),
        ];
        for (what, bytes, max_out, takes) in cases {
            let streamed = streamed(bytes, max_out);
            match whole(bytes, max_out) {
                Some(data) => {
                    assert!(takes, "{what}: the fast path took it");
                    assert_eq!(data, streamed.data, "{what}");
                    assert!(streamed.damage.is_empty(), "{what}");
                }
                None => {
                    assert!(!takes, "{what}: the fast path refused it");
                    assert!(!streamed.damage.is_empty(), "{what}");
                }
            }
            assert_eq!(gunzip(bytes, max_out).data, streamed.data, "{what}");
        }
    }

    #[test]
    fn output_over_the_limit_is_cut_at_the_limit() {
        let out = gunzip(&gz(&[b'x'; 10_000]), 4096);
        assert_eq!(out.data.len(), 4096);
        assert_eq!(out.damage.len(), 1);
        assert_eq!(out.cuts[0].at, 4096);
        assert!(out.untrusted().is_empty());
    }
}
