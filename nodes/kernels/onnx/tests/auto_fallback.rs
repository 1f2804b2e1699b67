//! `Device::Auto` without CUDA: CPU session, exactly one warning per process.
//! (Own test binary: the warn-once flag is process-wide.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use voxflow_onnx::{Device, FcnSession};

struct CountWarnings(Arc<AtomicUsize>);

impl<S: Subscriber> Layer<S> for CountWarnings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn auto_falls_back_to_cpu_with_one_warning() {
    require_ort();
    // The PyPI `onnxruntime` wheel has no CUDA provider: there Auto must end on the CPU.
    let cuda_built = <ort::ep::CUDA as ort::ep::ExecutionProvider>::is_available().unwrap_or(false);
    let warnings = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(CountWarnings(warnings.clone()));
    let (x, want) = parity_fixture("tiny_fcn");
    tracing::subscriber::with_default(subscriber, || {
        let mut sessions: Vec<FcnSession> = (0..3)
            .map(|_| FcnSession::new(model("tiny_fcn.onnx"), Device::Auto, 1).unwrap())
            .collect();
        for s in &mut sessions {
            let got = s.run(x.view()).unwrap();
            assert!(max_abs_diff(&got, &want) <= 1e-5);
            if s.device() == Device::Cpu {
                continue;
            }
            assert_eq!(s.device(), Device::Cuda(0));
        }
        let on_cpu = sessions
            .iter()
            .filter(|s| s.device() == Device::Cpu)
            .count();
        if !cuda_built {
            assert_eq!(on_cpu, sessions.len());
        }
        let expected = usize::from(on_cpu > 0);
        assert_eq!(
            warnings.load(Ordering::SeqCst),
            expected,
            "{on_cpu} CPU sessions"
        );
    });
}
