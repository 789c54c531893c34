//! What the receivers of this crate report: every report goes to the streaming context
//! ([`ReceiverContext::report_error`]: its listeners and its recent receiver errors) and, unless
//! the receiver was told otherwise, to the process's stderr, so a refused connection is seen
//! without a listener or a `tracing` subscriber. Core prints nothing; this crate does the I/O.

use dstream::{Data, ReceiverContext};

/// Reports `message` to the context and, with `stderr`, prints it as one line there.
pub(crate) fn report<T: Data>(ctx: &ReceiverContext<T>, stderr: bool, message: &str) {
    ctx.report_error(message);
    if stderr {
        eprintln!("dstream: receiver of {}: {message}", ctx.stream());
    }
}

/// Whether the `n`th report of a kind that can come once per record (an invalid line) is
/// printed: the first ten, then each power of ten, so a peer sending garbage cannot flood
/// stderr (the context still gets every report, and the counters count them all).
pub(crate) fn worth_printing(n: u64) -> bool {
    n <= 10 || is_power_of_ten(n)
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_reports_are_printed_ten_times_then_at_powers_of_ten() {
        let printed: Vec<u64> = (1..=20_000).filter(|&n| worth_printing(n)).collect();
        assert_eq!(printed, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100, 1000, 10_000]);
    }
}
