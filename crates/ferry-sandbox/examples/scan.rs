//! `scan PATH [RULES.toml] [--json]`: what `ferry scan DIR|ARTIFACT` prints, through
//! [`ferry_sandbox::scan::scan_command`]. Exits 1 when the policy blocks.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--json").collect();
    let Some(path) = rest.first() else {
        eprintln!("usage: scan DIR|FILE|ARTIFACT.ferry [RULES.toml] [--json]");
        std::process::exit(2);
    };
    let rules = rest.get(1).map(std::path::Path::new);
    match ferry_sandbox::scan::scan_command(std::path::Path::new(path), rules) {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("reports serialize")
                );
            } else {
                print!("{report}");
            }
            std::process::exit(i32::from(report.blocks()));
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
