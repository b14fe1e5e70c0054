//! A Rust service's request log that is never trimmed: every request's
//! line is formatted into a String (through core::fmt and alloc's
//! RawVec, which the growth line must skip) and kept in a global Vec.
//! About 1.5 s of requests; growing, at `remember`.
use std::fmt::Write;
use std::sync::Mutex;

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[inline(never)]
fn remember(i: u64) {
    let mut line = String::new();
    write!(line, "request {i} from client {} with a long enough line", i * 7).unwrap(); // @site:rust_log
    LOG.lock().unwrap().push(line);
}

fn main() {
    let start = std::time::Instant::now();
    let mut i = 0;
    while start.elapsed().as_millis() < 1500 {
        remember(i);
        // The request's own churn, dropped when it ends.
        let scratch: Vec<u8> = vec![0; 1000 + (i % 100) as usize];
        std::hint::black_box(&scratch);
        i += 1;
        if i % 100 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    println!("{}", LOG.lock().unwrap().len());
}
