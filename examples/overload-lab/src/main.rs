//! The overload lab: runs every protection stack against the same simulated overload,
//! prints the tables and the targets, and writes SVG plots.
//!
//! ```text
//! cargo run --release -p example-overload-lab [-- --quick] [--csv DIR] [--out DIR] [--threads N]
//! ```
//!
//! Plots go to `--out DIR`, or else `$CARGO_TARGET_DIR/overload-lab`, or else the
//! workspace's `target/overload-lab`. The exit status is 0 when every target passes, 1
//! when one fails, 2 on bad arguments or an I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use example_overload_lab::{Lab, Length, Selection};

const USAGE: &str = "usage: overload-lab [--quick] [--csv DIR] [--out DIR] [--threads N]

  --quick      shorter simulated runs (10 s warm-up, 20 s of load), for CI and debug builds
  --csv DIR    also write every run's per-bucket table as CSV into DIR
  --out DIR    where to write the SVG plots (default: $CARGO_TARGET_DIR/overload-lab, or
               the workspace's target/overload-lab)
  --threads N  simulations run in parallel (default 2)";

#[derive(Debug)]
struct Args {
    length: Length,
    csv: Option<PathBuf>,
    out: Option<PathBuf>,
    threads: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        length: Length::Full,
        csv: None,
        out: None,
        threads: 2,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => parsed.length = Length::Quick,
            "--csv" => parsed.csv = Some(PathBuf::from(value("--csv")?)),
            "--out" => parsed.out = Some(PathBuf::from(value("--out")?)),
            "--threads" => {
                let v = value("--threads")?;
                parsed.threads = match v.parse::<usize>() {
                    Ok(n) if (1..=64).contains(&n) => n,
                    _ => return Err(format!("--threads takes 1 to 64, got {v:?}")),
                };
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

/// `$CARGO_TARGET_DIR/overload-lab`, or the workspace's `target/overload-lab`.
fn default_out() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("overload-lab")
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("overload-lab: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let lab = match Lab::run(args.length, &Selection::default(), args.threads) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("overload-lab: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", lab.render());

    let out = args.out.unwrap_or_else(default_out);
    let plots = std::fs::create_dir_all(&out)
        .map_err(|e| e.to_string())
        .and_then(|()| lab.write_plots(&out).map_err(|e| e.to_string()));
    match plots {
        Ok(paths) => {
            let shown = std::fs::canonicalize(&out).unwrap_or(out);
            println!("\nPlots ({}) in {}", paths.len(), shown.display());
        }
        Err(e) => {
            eprintln!("overload-lab: plots in {}: {e}", out.display());
            return ExitCode::from(2);
        }
    }
    if let Some(dir) = args.csv {
        let csv = std::fs::create_dir_all(&dir).and_then(|()| lab.write_csv(&dir));
        match csv {
            Ok(paths) => println!("CSV ({} runs) in {}", paths.len(), dir.display()),
            Err(e) => {
                eprintln!("overload-lab: CSV in {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        }
    }
    if lab.targets().iter().all(|t| t.pass) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn arguments_are_parsed_and_bad_ones_refused() {
        let a = args(&["--quick", "--csv", "out", "--threads", "3"])
            .unwrap()
            .unwrap();
        assert_eq!(a.length, Length::Quick);
        assert_eq!(a.csv, Some(PathBuf::from("out")));
        assert_eq!(a.threads, 3);
        assert!(args(&["--help"]).unwrap().is_none());
        assert!(args(&["--csv"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--threads", "0"]).unwrap_err().contains("1 to 64"));
        assert!(args(&["--fast"]).unwrap_err().contains("unknown"));
    }
}
