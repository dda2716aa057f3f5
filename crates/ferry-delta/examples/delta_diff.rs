//! `delta_diff OLD NEW PATCH [--raw] [--level N]`: makes a Ferry patch and prints its statistics.

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: delta_diff OLD NEW PATCH [--raw] [--level N]");
        std::process::exit(2);
    }
    let mut opts = ferry_delta::DiffOptions {
        exec_aware: !args.iter().any(|a| a == "--raw"),
        ..Default::default()
    };
    if let Some(i) = args.iter().position(|a| a == "--level") {
        opts.level = args[i + 1].parse().expect("--level takes a number");
    }
    match ferry_delta::diff_files(
        Path::new(&args[1]),
        Path::new(&args[2]),
        Path::new(&args[3]),
        &opts,
    ) {
        Ok(s) => println!(
            "{s:?} ({:.3} % of new)",
            s.patch_size as f64 * 100.0 / s.new_size.max(1) as f64
        ),
        Err(e) => {
            eprintln!("delta_diff: {e}");
            std::process::exit(1);
        }
    }
}
