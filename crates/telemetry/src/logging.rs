//! Process-wide logging and tracing set-up.
//!
//! Logs are JSON lines by default (LOG_FORMAT=text for a terminal), filtered by RUST_LOG. When
//! OTEL_EXPORTER_OTLP_ENDPOINT is set, spans are also exported over OTLP/HTTP; the W3C trace
//! context propagator is installed either way so a trace crosses the queue intact.

use anyhow::Context as _;
use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use stampede_config::{LogFormat, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes exported spans when dropped; keep it alive for the life of the process.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Nothing useful can be done with an export error while the process exits.
        let _ = self.provider.shutdown();
    }
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Services log to standard output, where container runtimes collect it.
    Stdout,
    /// Commands whose standard output is their result (`admin …`) log to standard error.
    Stderr,
}

/// Installs the global subscriber and propagator. `service` names the process in traces
/// (`stampede-web`, …) unless OTEL_SERVICE_NAME says otherwise.
pub fn init(
    config: &TelemetryConfig,
    service: &str,
    target: LogTarget,
) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("RUST_LOG: {:?} is not a valid filter", config.log_filter))?;

    let service_name = config
        .service_name
        .clone()
        .unwrap_or_else(|| service.to_string());
    let mut provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service_name).build());
    if let Some(endpoint) = &config.otlp_endpoint {
        let endpoint = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint);
        if let Some(pem) = &config.otlp_ca {
            exporter = exporter.with_http_client(collector_client(pem)?);
        }
        let exporter = exporter
            .build()
            .context("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter")?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let tracer = provider.tracer("stampede");
    global::set_tracer_provider(provider.clone());

    let writer = move || -> Box<dyn std::io::Write> {
        match target {
            LogTarget::Stdout => Box::new(std::io::stdout()),
            LogTarget::Stderr => Box::new(std::io::stderr()),
        }
    };
    let fmt_layer = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .context("a global tracing subscriber is already installed")?;
    Ok(TelemetryGuard { provider })
}

/// The exporter's HTTP client trusting the collector's CA (OTEL_EXPORTER_OTLP_CERTIFICATE) as
/// well as the system's roots, with OpenTelemetry's default export time-out. Built on a thread
/// of its own, as the exporter builds its default one: a blocking client starts (and, on an
/// error, drops) a runtime, which is not allowed on the async runtime's threads.
fn collector_client(pem: &str) -> anyhow::Result<reqwest::blocking::Client> {
    let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .context("OTEL_EXPORTER_OTLP_CERTIFICATE: not a PEM bundle")?;
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .tls_certs_merge(certificates)
            .timeout(std::time::Duration::from_secs(10))
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread building the OTLP client panicked"))?
    .context("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot build the OTLP client")
}
