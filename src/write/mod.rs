//! Writing partitions: typed Parquet for the Delta tables, untyped JSON Lines, and the
//! partition index that remembers where every record came from.

pub mod encoder;
pub mod index;
pub mod stored;
pub mod typed;
pub mod untyped;

/// gzip of `bytes` at the fast level (bundle untyped files, archive objects a restore writes).
pub fn gzip(bytes: &[u8]) -> crate::Result<bytes::Bytes> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(bytes)
        .map_err(|e| crate::Error::io("gzip", e))?;
    let out = gz.finish().map_err(|e| crate::Error::io("gzip", e))?;
    Ok(bytes::Bytes::from(out))
}
