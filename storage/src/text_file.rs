//! Text files read as datasets of lines, split by byte ranges.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use dstream::PartitionSource;

/// A text file as a dataset of its lines (without line terminators), split into partitions by
/// byte ranges so that each partition is read independently.
///
/// A line belongs to the partition whose byte range holds its first byte: a partition skips a
/// line it starts in the middle of and reads on past its end to finish its last line. Lines
/// must be UTF-8; a partition holding an invalid line fails with an error naming the file and
/// the byte offset.
///
/// # Examples
///
/// ```
/// use dstream_storage::TextFile;
/// # let dir = std::env::temp_dir().join(format!("dstream-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("lines.txt");
/// std::fs::write(&path, "one\ntwo\nthree\n")?;
/// let cluster = dstream::StepCluster::builder().workers(2).build();
/// let lines = cluster.context().from_source(TextFile::open(&path, 2)?)?;
/// assert_eq!(lines.collect()?, vec!["one", "two", "three"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct TextFile {
    path: PathBuf,
    len: u64,
    partitions: usize,
}

impl TextFile {
    /// Opens `path` to be read as `partitions` partitions (at least 1; an empty file has one
    /// empty partition). Fails if the file cannot be read.
    pub fn open(path: impl AsRef<Path>, partitions: usize) -> io::Result<TextFile> {
        let path = path.as_ref().to_path_buf();
        let len = File::open(&path)?.metadata()?.len();
        let partitions = if len == 0 { 1 } else { partitions.clamp(1, usize::try_from(len).unwrap_or(usize::MAX)) };
        Ok(TextFile { path, len, partitions })
    }

    fn range(&self, split: usize) -> (u64, u64) {
        let n = self.partitions as u128;
        let at = |i: usize| u64::try_from(u128::from(self.len) * i as u128 / n).unwrap_or(self.len);
        (at(split), at(split + 1))
    }

    fn read_range(&self, split: usize) -> io::Result<Vec<String>> {
        let (start, end) = self.range(split);
        let mut reader = BufReader::new(File::open(&self.path)?);
        let mut pos = start;
        if start > 0 {
            // Skip to the start of the first line that begins at or after `start`: the line
            // holding byte `start - 1` belongs to the previous partition.
            reader.seek(SeekFrom::Start(start - 1))?;
            let mut skipped = Vec::new();
            pos = start - 1 + reader.read_until(b'\n', &mut skipped)? as u64;
        }
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        while pos < end {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            let line_start = pos;
            pos += n as u64;
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            let line = String::from_utf8(std::mem::take(&mut buf)).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("invalid UTF-8 in the line at byte {line_start}"))
            })?;
            lines.push(line);
        }
        Ok(lines)
    }
}

impl PartitionSource<String> for TextFile {
    fn partitions(&self) -> usize {
        self.partitions
    }

    fn read(&self, split: usize) -> Result<Vec<String>, String> {
        self.read_range(split).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        format!("text file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dstream-storage-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt");
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn all_lines(file: &TextFile) -> Vec<String> {
        (0..file.partitions()).flat_map(|p| file.read(p).unwrap()).collect()
    }

    #[test]
    fn every_split_count_reads_every_line_once() {
        let cases: &[&str] =
            &["", "a", "a\n", "a\nbb\nccc", "a\nbb\nccc\n", "\n\n\n", "one line\r\ntwo\r\n", "x\n\ny\n"];
        for (i, contents) in cases.iter().enumerate() {
            let path = temp_file(&format!("case{i}"), contents.as_bytes());
            let expected: Vec<String> = contents.lines().map(str::to_owned).collect();
            for partitions in 1..=12 {
                let file = TextFile::open(&path, partitions).unwrap();
                assert_eq!(all_lines(&file), expected, "contents {contents:?}, {partitions} partitions");
            }
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn invalid_utf8_and_missing_files_are_errors() {
        let path = temp_file("utf8", b"ok\n\xff\xfe\nok\n");
        let file = TextFile::open(&path, 1).unwrap();
        let err = file.read(0).unwrap_err();
        assert!(err.contains("invalid UTF-8") && err.contains("byte 3"), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        assert!(TextFile::open("/nonexistent/dstream/file", 2).is_err());
    }
}
