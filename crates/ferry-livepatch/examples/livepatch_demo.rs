//! Runs the live-patching demo and benchmark (`ferry demo livepatch` calls the same function).

fn main() {
    match ferry_livepatch::demo::run(&ferry_livepatch::demo::DemoOptions::default()) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}
