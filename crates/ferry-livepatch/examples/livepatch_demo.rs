//! Runs the live-patching demo and benchmark (`ferry demo livepatch` calls the same function).
//! Usage: `livepatch_demo [--cycles N]`.

fn main() {
    let mut opts = ferry_livepatch::demo::DemoOptions::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--cycles") {
        match args.get(i + 1).and_then(|n| n.parse().ok()) {
            Some(n) => opts.cycles = n,
            None => {
                eprintln!("usage: livepatch_demo [--cycles N]");
                std::process::exit(2);
            }
        }
    }
    match ferry_livepatch::demo::run(&opts) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}
