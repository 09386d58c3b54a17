//! Avro block codecs (null, deflate, snappy, zstd, bzip2, xz), each decompressing into a
//! bounded buffer: a block never allocates more than it may decode to.

use std::borrow::Cow;
use std::io::Read;

use super::container::Fault;

/// Codecs of SPEC 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Codec {
    Null,
    Deflate,
    Snappy,
    Zstandard,
    Bzip2,
    Xz,
}

impl Codec {
    pub(super) fn from_name(name: &[u8]) -> Option<Codec> {
        Some(match name {
            b"null" => Codec::Null,
            b"deflate" => Codec::Deflate,
            b"snappy" => Codec::Snappy,
            b"zstandard" => Codec::Zstandard,
            b"bzip2" => Codec::Bzip2,
            b"xz" => Codec::Xz,
            _ => return None,
        })
    }
}

/// Decompresses one block's data into at most `max_out` bytes (`Fault::TooMany` beyond).
pub(super) fn decompress(
    codec: Codec,
    data: &[u8],
    max_out: usize,
) -> Result<Cow<'_, [u8]>, Fault> {
    let io = |e: std::io::Error| Fault::Invalid(e.to_string());
    let bounded = |mut r: Box<dyn Read + '_>| -> Result<Cow<'_, [u8]>, Fault> {
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max_out));
        (&mut r)
            .take(max_out as u64 + 1)
            .read_to_end(&mut out)
            .map_err(io)?;
        if out.len() > max_out {
            return Err(Fault::TooMany);
        }
        Ok(Cow::Owned(out))
    };
    match codec {
        Codec::Null if data.len() > max_out => Err(Fault::TooMany),
        Codec::Null => Ok(Cow::Borrowed(data)),
        Codec::Deflate => match super::super::inflate::deflate_whole(data, data.len() * 4, max_out)
        {
            Some(out) => Ok(Cow::Owned(out)),
            // Bad data or too much of it: the stream decoder says which.
            None => bounded(Box::new(flate2::read::DeflateDecoder::new(data))),
        },
        Codec::Snappy => {
            let Some((body, crc)) = data.split_last_chunk::<4>() else {
                return Err(Fault::Short);
            };
            let len = snap::raw::decompress_len(body).map_err(|e| Fault::Invalid(e.to_string()))?;
            // A snappy copy of at most 64 bytes takes at least 3: no stream expands more than
            // ~22 times, so a larger claim is a lie, not a reason to allocate.
            if len > body.len().saturating_mul(SNAPPY_MAX_RATIO) {
                return Err(Fault::Invalid(format!(
                    "snappy block of {} bytes claims {len} bytes",
                    body.len()
                )));
            }
            if len > max_out {
                return Err(Fault::TooMany);
            }
            let mut out = vec![0; len];
            let n = snap::raw::Decoder::new()
                .decompress(body, &mut out)
                .map_err(|e| Fault::Invalid(e.to_string()))?;
            out.truncate(n);
            if crc32fast::hash(&out) != u32::from_be_bytes(*crc) {
                return Err(Fault::Invalid("snappy CRC-32 mismatch".into()));
            }
            Ok(Cow::Owned(out))
        }
        Codec::Zstandard => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(data).map_err(io)?;
            // Windows above 2^27 (128 MiB) are refused rather than allocated.
            dec.window_log_max(27).map_err(io)?;
            bounded(Box::new(dec))
        }
        Codec::Bzip2 => bounded(Box::new(bzip2::read::BzDecoder::new(data))),
        Codec::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
                .map_err(|e| Fault::Invalid(e.to_string()))?;
            bounded(Box::new(liblzma::read::XzDecoder::new_stream(data, stream)))
        }
    }
}

/// Most a snappy stream can expand (64 bytes from a 3-byte copy, with margin).
pub(super) const SNAPPY_MAX_RATIO: usize = 24;

/// Memory an xz stream may ask for (xz -9 needs 65 MiB).
pub(super) const XZ_MEMLIMIT: u64 = 128 << 20;
