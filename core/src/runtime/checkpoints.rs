//! The threads of asynchronous data checkpoint writes: a write runs on a thread of its own
//! while the batches go on; the context waits for those in flight when it stops.

use std::sync::Mutex;
use std::thread::JoinHandle;

use crate::error::Error;

/// Data checkpoint writes running on threads of their own.
///
/// Bounded by the writes running: a thread that ended is forgotten when the next one starts.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    in_flight: Mutex<Vec<JoinHandle<()>>>,
}

impl Writers {
    /// Starts `write` on a thread named `name`. Fails with [`Error::ThreadStart`] when the OS
    /// refuses a thread; `write` does not run then.
    pub(crate) fn start(&self, name: String, write: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        let handle = super::spawn(name, write)?;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        // An ended write recorded its result itself; its handle has nothing left to give.
        in_flight.retain(|h| !h.is_finished());
        in_flight.push(handle);
        Ok(())
    }

    /// Waits for every write in flight to end.
    pub(crate) fn wait(&self) {
        let handles = std::mem::take(&mut *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            // A write that panicked recorded nothing; its checkpoint is simply missing.
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn waiting_sees_every_write_end_even_a_panicking_one() {
        let writers = Writers::default();
        let ended = Arc::new(AtomicU32::new(0));
        for i in 0..4 {
            let ended = Arc::clone(&ended);
            writers
                .start(format!("dstream-test-writer-{i}"), move || {
                    if i == 2 {
                        panic!("a write panics");
                    }
                    ended.fetch_add(1, Ordering::SeqCst);
                })
                .expect("a thread starts");
        }
        writers.wait();
        assert_eq!(ended.load(Ordering::SeqCst), 3);
        assert!(writers.in_flight.lock().unwrap().is_empty());
    }
}
