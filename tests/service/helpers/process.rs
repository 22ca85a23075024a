//! Child processes that pick their own port and say which in their output.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The word after `marker` in the first line of `output` that has it (a
/// trailing full stop left out), waiting up to 20 s. The output keeps being
/// read, and passed on to ours, so the child never blocks on a full pipe.
pub fn announced(output: impl Read + Send + 'static, marker: &'static str) -> String {
    announced_keeping_log(output, marker).0
}

/// `announced`, or `None` when the output ends (the child exited) or 20 s
/// pass without it.
pub fn maybe_announced(output: impl Read + Send + 'static, marker: &'static str) -> Option<String> {
    watch(output, marker)
        .0
        .recv_timeout(Duration::from_secs(20))
        .ok()
}

/// `announced`, and every line of the output, as it keeps coming.
pub fn announced_keeping_log(
    output: impl Read + Send + 'static,
    marker: &'static str,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let (word, log) = watch(output, marker);
    let word = word
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no \"{marker}\" in the child's output"));
    (word, log)
}

/// The words that follow `marker` in `output`, as they come, and every line.
fn watch(
    output: impl Read + Send + 'static,
    marker: &'static str,
) -> (std::sync::mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (found, word) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once(marker) {
                let next = rest.split_whitespace().next().unwrap_or("");
                let _ = found.send(next.trim_end_matches(['.', '"', ',']).to_owned());
            }
            eprintln!("{line}");
            kept.lock().unwrap().push(line);
        }
    });
    (word, log)
}
