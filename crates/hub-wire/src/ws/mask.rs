//! XOR (un)masking of WebSocket payloads.
//!
//! Invariant: [`apply_mask`] is an involution that treats `buf` as the bytes
//! starting at payload position `offset`, so a payload may be unmasked in
//! arbitrary consecutive pieces with the same result as in one go.

/// XORs `buf` in place with the 4-byte `mask`, starting at payload position `offset`.
pub(crate) fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let [a, b, c, d] = key;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8 (hence of 4) from `buf`'s start.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::apply_mask;

    fn naive(buf: &[u8], mask: [u8; 4], offset: usize) -> Vec<u8> {
        buf.iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[(i + offset) % 4])
            .collect()
    }

    #[test]
    fn matches_naive_for_all_lengths_and_offsets() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..=40u8).collect();
        for len in 0..data.len() {
            for offset in 0..8 {
                let mut buf = data[..len].to_vec();
                apply_mask(&mut buf, mask, offset);
                assert_eq!(
                    buf,
                    naive(&data[..len], mask, offset),
                    "len {len} off {offset}"
                );
            }
        }
    }

    #[test]
    fn piecewise_equals_whole() {
        let mask = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        let mut pieces = data.clone();
        let (a, rest) = pieces.split_at_mut(7);
        let (b, c) = rest.split_at_mut(13);
        apply_mask(a, mask, 0);
        apply_mask(b, mask, 7);
        apply_mask(c, mask, 20);
        assert_eq!(whole, pieces);
    }
}
