//! `delta_apply OLD PATCH OUT`: applies a Ferry patch (what `ferry delta apply` runs).

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: delta_apply OLD PATCH OUT");
        std::process::exit(2);
    }
    match ferry_delta::apply_files(
        Path::new(&args[1]),
        Path::new(&args[2]),
        Path::new(&args[3]),
    ) {
        Ok(s) => println!(
            "wrote {} bytes to {} in {:?}",
            s.new_size, args[3], s.elapsed
        ),
        Err(e) => {
            eprintln!("delta_apply: {e}");
            std::process::exit(1);
        }
    }
}
