//! `delta_bench [CACHE_DIR]`: runs the delta benchmark and prints its table.

use std::path::PathBuf;

fn main() {
    let cache = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/delta-bench-cache"));
    match ferry_delta::bench::run(&cache) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("delta_bench: {e}");
            std::process::exit(1);
        }
    }
}
