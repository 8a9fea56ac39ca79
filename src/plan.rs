//! Part planning: how an object is cut into parts (uploads) or ranges (downloads).

/// S3 refuses a multipart upload of more than 10,000 parts.
pub const MAX_PARTS: u64 = 10_000;
/// S3 refuses parts below 5 MiB (except the last) and above 5 GiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The largest object S3 stores.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// One contiguous piece of an object: `number` is 1-based as S3 part numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub offset: u64,
    pub len: u64,
}

impl Part {
    /// The HTTP `Range` header value that fetches this part.
    pub fn range_header(&self) -> String {
        format!("bytes={}-{}", self.offset, self.offset + self.len - 1)
    }
}

/// The part size for a multipart upload of `size` bytes, as s3transfer's ChunksizeAdjuster
/// chooses it: the requested size doubled until the object fits in 10,000 parts, then clamped
/// to S3's limits (in that order: 3 MiB asked for a 60 GiB file gives 12 MiB, not 10).
pub fn upload_part_size(requested: u64, size: u64) -> u64 {
    let mut part_size = requested.max(1);
    while size.div_ceil(part_size) > MAX_PARTS {
        part_size = part_size.saturating_mul(2);
    }
    part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE)
}

/// The part size for a stream of unknown length: the requested size within S3's limits (the
/// 10,000-part limit then caps the stream at 10,000 parts of that size, as in s3transfer).
pub fn stream_part_size(requested: u64) -> u64 {
    requested.clamp(MIN_PART_SIZE, MAX_PART_SIZE)
}

/// Cuts `size` bytes into parts of `part_size` (the last one shorter), as they are taken: a
/// download's ranges are not limited in number (a chunksize of one byte is a range a byte).
/// An empty object has no parts.
pub fn split(size: u64, part_size: u64) -> impl Iterator<Item = Part> + Send + 'static {
    let part_size = part_size.max(1);
    (0..size.div_ceil(part_size)).map(move |index| {
        let offset = index * part_size;
        Part {
            number: u32::try_from(index + 1).unwrap_or(u32::MAX),
            offset,
            len: part_size.min(size - offset),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn split_covers_the_object_exactly() {
        let parts: Vec<Part> = split(48 * MIB + 7, 8 * MIB).collect();
        assert_eq!(parts.len(), 7);
        assert_eq!(
            parts[0],
            Part {
                number: 1,
                offset: 0,
                len: 8 * MIB
            }
        );
        assert_eq!(
            parts[6],
            Part {
                number: 7,
                offset: 48 * MIB,
                len: 7
            }
        );
        let covered: u64 = parts.iter().map(|p| p.len).sum();
        assert_eq!(covered, 48 * MIB + 7);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].offset + pair[0].len, pair[1].offset);
        }
    }

    #[test]
    fn split_of_exact_multiple_and_empty() {
        assert_eq!(split(16 * MIB, 8 * MIB).count(), 2);
        assert_eq!(split(0, 8 * MIB).count(), 0);
        assert_eq!(
            split(1, 8 * MIB).collect::<Vec<_>>(),
            vec![Part {
                number: 1,
                offset: 0,
                len: 1
            }]
        );
    }

    #[test]
    fn range_header_is_inclusive() {
        let part = Part {
            number: 2,
            offset: 10,
            len: 5,
        };
        assert_eq!(part.range_header(), "bytes=10-14");
    }

    #[test]
    fn part_size_respects_s3_limits() {
        assert_eq!(upload_part_size(8 * MIB, 100 * MIB), 8 * MIB);
        assert_eq!(upload_part_size(MIB, 100 * MIB), MIN_PART_SIZE);
        assert_eq!(upload_part_size(u64::MAX, 100 * MIB), MAX_PART_SIZE);
        // 100 GiB in 8 MiB parts would be 12,800 parts: doubled to 16 MiB.
        let size = 100 * 1024 * MIB;
        let part = upload_part_size(8 * MIB, size);
        assert_eq!(part, 16 * MIB);
        assert!(size.div_ceil(part) <= MAX_PARTS);
        // Doubled from the size asked for, then clamped, as s3transfer does: 60 GiB in 1 MiB
        // parts doubles to 8 MiB, in 3 MiB parts to 12 MiB (not 5 MiB doubled to 10).
        let size = 60 * 1024 * MIB;
        assert_eq!(upload_part_size(MIB, size), 8 * MIB);
        assert_eq!(upload_part_size(3 * MIB, size), 12 * MIB);
        assert_eq!(upload_part_size(0, size), 8 * MIB);
        // The largest object still fits.
        assert!(MAX_OBJECT_SIZE.div_ceil(upload_part_size(8 * MIB, MAX_OBJECT_SIZE)) <= MAX_PARTS);
    }
}
