//! Shared setup: the demo built into a temporary directory and its v1→v2 patch.

#![allow(dead_code)]

use ferry_livepatch::demo::{DemoBinaries, build_demo, patch_options};
use ferry_livepatch::{PatchBundle, build_patch};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub bins: DemoBinaries,
    pub bundle: PatchBundle,
}

pub fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bins = build_demo(dir.path()).unwrap();
    let bundle = build_patch(&bins.v1, &bins.v2, &patch_options()).unwrap();
    Setup { dir, bins, bundle }
}

/// Client load on loopback until stopped; counts answered and failed requests.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let handles = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) && n < 20_000 {
                        match ferry_livepatch::demo::request(port, 1, 1) {
                            Ok(r) if r.starts_with("sum=") => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        n += 1;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        Load { stop, ok, failed, handles }
    }

    pub fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.join().unwrap();
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}
