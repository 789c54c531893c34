//! Cutting a byte stream into lines with a bound on a line's length: shared by the socket and
//! the file stream receivers, so both skip and report an over-long line the same way.

/// The longest line a text receiver keeps by default, in bytes without its terminator: longer
/// lines are skipped and reported, which bounds the memory one line can cost.
pub(crate) const MAX_LINE_BYTES_DEFAULT: usize = 1 << 20;

/// What the splitter found: a complete line (without its `\n`), or a line it dropped because
/// it grew past the limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Line(&'a [u8]),
    TooLong,
}

/// Cuts a byte stream into lines, holding at most `max` bytes of an unfinished line.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
    /// Dropping the rest of an oversized line, up to its `\n`.
    skipping: bool,
    max: usize,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> LineSplitter {
        LineSplitter { partial: Vec::new(), skipping: false, max }
    }

    pub(crate) fn feed(&mut self, mut data: &[u8], f: &mut impl FnMut(Piece<'_>)) {
        while !data.is_empty() {
            let Some(i) = data.iter().position(|b| *b == b'\n') else {
                if !self.skipping {
                    if self.partial.len() + data.len() > self.max {
                        self.partial.clear();
                        self.skipping = true;
                        f(Piece::TooLong);
                    } else {
                        self.partial.extend_from_slice(data);
                    }
                }
                return;
            };
            let line = &data[..i];
            data = &data[i + 1..];
            if self.skipping {
                // The end of a line already reported as too long.
                self.skipping = false;
            } else if self.partial.len() + line.len() > self.max {
                self.partial.clear();
                f(Piece::TooLong);
            } else if self.partial.is_empty() {
                f(Piece::Line(line));
            } else {
                self.partial.extend_from_slice(line);
                f(Piece::Line(&self.partial));
                self.partial.clear();
            }
        }
    }

    /// The end of the stream: an unterminated last line is a line.
    pub(crate) fn finish(&mut self, f: &mut impl FnMut(Piece<'_>)) {
        if !self.skipping && !self.partial.is_empty() {
            f(Piece::Line(&self.partial));
        }
        self.partial.clear();
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, inputs: &[&[u8]]) -> Vec<Option<String>> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut f = |p: Piece<'_>| {
            out.push(match p {
                Piece::Line(l) => Some(String::from_utf8_lossy(l).into_owned()),
                Piece::TooLong => None,
            })
        };
        for i in inputs {
            s.feed(i, &mut f);
        }
        s.finish(&mut f);
        out
    }

    #[test]
    fn lines_are_cut_across_reads_and_the_last_one_is_kept_at_the_end() {
        assert_eq!(
            split(100, &[b"ab", b"c\nd", b"\n\nef"]),
            vec![Some("abc".into()), Some("d".into()), Some(String::new()), Some("ef".into())]
        );
        assert_eq!(split(100, &[b"x\n"]), vec![Some("x".into())]);
    }

    #[test]
    fn oversized_lines_are_dropped_whole_and_reported_once() {
        assert_eq!(split(3, &[b"abcd\nok\n"]), vec![None, Some("ok".into())]);
        assert_eq!(split(3, &[b"ab", b"cd", b"ef", b"gh\nok"]), vec![None, Some("ok".into())]);
        assert_eq!(split(3, &[b"abc", b"\n"]), vec![Some("abc".into())]);
        assert_eq!(split(3, &[b"abcdef"]), vec![None]);
    }
}
