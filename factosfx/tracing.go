package factosfx

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.uber.org/fx"
)

// Tracing is configured with the standard OTEL_* variables, with one
// deliberate difference: it is off unless OTEL_TRACES_EXPORTER=otlp, so a
// worker that nobody asked to trace runs no exporter, no batcher and a
// no-op tracer (one non-recording span per dispatch, reaction and effect,
// and no Temporal interceptor). The OpenTelemetry SDK reads the other
// variables (endpoint, headers, service name, resource attributes,
// sampler) itself, from the process environment.

const (
	envTracesExporter     = "OTEL_TRACES_EXPORTER"
	envOTLPProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envOTLPTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	defaultServiceName    = "factos-worker"
)

func setOTLPProtocol(c *Config, v string) error {
	if v != "http/protobuf" && v != "grpc" {
		return invalid("is not a supported OTLP protocol", "http/protobuf or grpc")
	}
	c.OTLPProtocol = v
	return nil
}

// sdkVar accepts a variable the OpenTelemetry SDK reads itself.
func sdkVar(*Config, string) error { return nil }

// Tracing is the process's tracer provider: a no-op one when tracing is
// off, else an SDK provider exporting over OTLP, flushed and shut down
// when the process stops.
type Tracing struct {
	Provider trace.TracerProvider
	// Enabled reports whether spans are recorded and exported.
	Enabled bool
}

// NewTracing returns the tracer provider cfg asks for. When tracing is on
// it also becomes OpenTelemetry's global provider, with the W3C trace
// context and baggage as the global propagator, so that the application's
// own instrumentation joins the same traces.
func NewTracing(lc fx.Lifecycle, cfg *Config, l *slog.Logger) (*Tracing, error) {
	if cfg.TracesExporter != "otlp" {
		return &Tracing{Provider: noop.NewTracerProvider()}, nil
	}
	ctx := context.Background()
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if cfg.OTLPProtocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("error creating the OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", defaultServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("error reading the OpenTelemetry resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		l.Warn("opentelemetry", "err", err)
	}))
	// Stopped last (fx stops in reverse order): the spans of the
	// components' own shutdown are flushed too.
	lc.Append(fx.StopHook(func(ctx context.Context) error { return tp.Shutdown(ctx) }))
	return &Tracing{Provider: tp, Enabled: true}, nil
}

// instrumentTemporal sets the Temporal client's metrics handler (into the
// process's Prometheus registry) and, when tracing is on, its tracing
// interceptor.
func instrumentTemporal(opts *client.Options, m *Metrics, tr *Tracing, l *slog.Logger) error {
	if m != nil {
		h, err := m.temporalMetricsHandler(l)
		if err != nil {
			return err
		}
		opts.MetricsHandler = h
	}
	if tr != nil && tr.Enabled {
		ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
			Tracer: tr.Provider.Tracer("go.temporal.io/sdk"),
			// The global propagator is ignored by default; ours is the
			// W3C one the store and the jobs use.
			TextMapPropagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		})
		if err != nil {
			return fmt.Errorf("error creating the Temporal tracing interceptor: %w", err)
		}
		opts.Interceptors = append(opts.Interceptors, ti)
	}
	return nil
}
