//! What every Stampede process shows about itself: JSON logs, OpenTelemetry traces (exported over
//! OTLP when configured, and carried across the queue), Prometheus metrics and health checks.

pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod propagation;
pub mod workers;

pub use health::{Health, HealthCheck};
pub use logging::{LogTarget, TelemetryGuard, init};
pub use metrics::Metrics;
pub use workers::Workers;
