//! Whole-buffer DEFLATE and gzip decoding with libdeflate (about twice zlib-rs's speed on the
//! archive): the fast path for intact data. It reports only success, no room, or bad data; the
//! streaming decoders (flate2) decode anything it refuses, and say where and why.

use std::ffi::c_void;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_deflate_decompress_ex,
    libdeflate_free_decompressor, libdeflate_gzip_decompress_ex,
    libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE, libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// What one call did.
#[derive(Debug, PartialEq)]
pub(super) enum Inflated {
    /// Decoded; `read` input bytes made up the stream (a gzip member with its trailer).
    Done { read: usize },
    /// The output did not fit in the room given; nothing was appended.
    NoRoom,
    /// Not a valid stream (or a failed CRC or size check); nothing was appended.
    Bad,
}

/// A libdeflate decompressor (about 10 KB of tables), freed on drop.
pub(super) struct Inflater(NonNull<libdeflate_decompressor>);

impl Inflater {
    pub(super) fn new() -> Inflater {
        // SAFETY: no preconditions; a null result (out of memory) is refused below.
        let p = unsafe { libdeflate_alloc_decompressor() };
        Inflater(NonNull::new(p).expect("libdeflate: out of memory for a decompressor"))
    }

    /// Decodes the gzip member at the start of `input`, appending at most `room` bytes to
    /// `out`.
    pub(super) fn gzip_member(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize) -> Inflated {
        self.call(libdeflate_gzip_decompress_ex, input, out, room)
    }

    /// Decodes the raw DEFLATE stream at the start of `input`, appending at most `room` bytes
    /// to `out`.
    pub(super) fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize) -> Inflated {
        self.call(libdeflate_deflate_decompress_ex, input, out, room)
    }

    fn call(&mut self, f: ExFn, input: &[u8], out: &mut Vec<u8>, room: usize) -> Inflated {
        out.reserve(room);
        let (mut read, mut wrote) = (0usize, 0usize);
        let spare = out.spare_capacity_mut();
        // SAFETY: the decompressor is live and used by one thread at a time (`&mut self`);
        // libdeflate reads at most `input.len()` bytes and writes at most `room` bytes into
        // the spare capacity, which holds at least that many (reserved above).
        let result = unsafe {
            f(
                self.0.as_ptr(),
                input.as_ptr().cast::<c_void>(),
                input.len(),
                spare.as_mut_ptr().cast::<c_void>(),
                room.min(spare.len()),
                &mut read,
                &mut wrote,
            )
        };
        match result {
            r if r == libdeflate_result_LIBDEFLATE_SUCCESS => {
                // SAFETY: on success libdeflate initialised exactly `wrote` (<= room) bytes
                // at the end of `out`.
                unsafe { out.set_len(out.len() + wrote) };
                Inflated::Done { read }
            }
            r if r == libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Inflated::NoRoom,
            _ => Inflated::Bad,
        }
    }
}

type ExFn = unsafe extern "C" fn(
    *mut libdeflate_decompressor,
    *const c_void,
    usize,
    *mut c_void,
    usize,
    *mut usize,
    *mut usize,
) -> libdeflate_sys::libdeflate_result;

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_decompressor`, freed once.
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

// SAFETY: the decompressor is plain memory with no thread affinity; `&mut self` keeps its use
// to one thread at a time.
unsafe impl Send for Inflater {}

/// Decodes a whole raw DEFLATE stream of at most `max_out` bytes, starting with room for
/// `first` and doubling. `None` when the data is bad or decodes to more than `max_out`.
pub(super) fn deflate_whole(data: &[u8], first: usize, max_out: usize) -> Option<Vec<u8>> {
    let mut inf = Inflater::new();
    let mut room = first.clamp(1, max_out.max(1));
    loop {
        let mut out = Vec::new();
        match inf.deflate(data, &mut out, room.min(max_out)) {
            Inflated::Done { .. } => return Some(out),
            Inflated::NoRoom if room < max_out => room = room.saturating_mul(2),
            Inflated::NoRoom | Inflated::Bad => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflated(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn deflate_grows_its_room_up_to_the_limit() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let z = deflated(&data);
        assert_eq!(deflate_whole(&z, 16, data.len()), Some(data.clone()));
        assert_eq!(deflate_whole(&z, 16, data.len() - 1), None);
        assert_eq!(deflate_whole(&z[..z.len() / 2], 16, 1 << 30), None);
        assert_eq!(deflate_whole(&deflated(b""), 0, 0), Some(vec![]));
    }

    #[test]
    fn gzip_member_appends_and_says_what_it_read() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello\n").unwrap();
        let member = gz.finish().unwrap();
        let mut two = member.clone();
        two.extend_from_slice(&member);
        let mut inf = Inflater::new();
        let mut out = b">".to_vec();
        assert_eq!(inf.gzip_member(&two, &mut out, 5), Inflated::NoRoom);
        assert_eq!(out, b">");
        let read = member.len();
        assert_eq!(inf.gzip_member(&two, &mut out, 6), Inflated::Done { read });
        assert_eq!(
            inf.gzip_member(&two[read..], &mut out, 6),
            Inflated::Done { read }
        );
        assert_eq!(out, b">hello\nhello\n");
        let mut bad = member.clone();
        let n = bad.len();
        bad[n - 6] ^= 1; // the CRC
        assert_eq!(inf.gzip_member(&bad, &mut out, 100), Inflated::Bad);
        assert_eq!(out, b">hello\nhello\n");
    }
}
