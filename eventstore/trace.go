package eventstore

import (
	"context"
	"maps"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// This file holds the store's tracing: one span per dispatch or append, and
// the W3C trace context written into the appended events' metadata, so
// that whatever reads a record later (a reaction, an effect, a projection)
// can join or link to the trace of the command that wrote it.
//
// The store uses the OpenTelemetry API, not the SDK: the API is a few small
// packages with no dependencies of their own beyond the standard library,
// and does nothing until an application installs a TracerProvider. An
// interface of the store's own would have needed an adapter to the same API
// in every application that traces.

// TracerName is the instrumentation name of the store's tracer.
const TracerName = "github.com/factos-go/factos/eventstore"

// Metadata keys of the W3C trace context (https://www.w3.org/TR/trace-context/)
// the store writes into every appended event's metadata when the dispatch
// runs in a sampled or remote trace. They are counted in
// Limits.MaxMetadataBytes like any other key (about 70 bytes).
const (
	MetadataTraceParent = "traceparent"
	MetadataTraceState  = "tracestate"
)

// Span attribute keys of a dispatch span.
const (
	attrOp        = attribute.Key("factos.op")
	attrStrategy  = attribute.Key("factos.strategy")
	attrStream    = attribute.Key("factos.stream")
	attrCommandID = attribute.Key("factos.command_id")
	attrAttempts  = attribute.Key("factos.attempts")
	attrPositions = attribute.Key("factos.positions")
	attrOutcome   = attribute.Key("factos.outcome")
	attrDuplicate = attribute.Key("factos.duplicate")
)

var traceContext = propagation.TraceContext{}

func (c *Config) tracer() trace.Tracer {
	tp := c.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(TracerName)
}

// startSpan starts the span of one dispatch or append and returns the
// metadata its events carry: p.metadata plus the span's trace context, if
// the span belongs to a valid trace. With the default no-op provider and no
// trace in ctx the span is a no-op and the metadata is p.metadata itself.
func (s *Store) startSpan(ctx context.Context, p *plan) (context.Context, trace.Span) {
	ctx, span := s.tracer.Start(ctx, "factos."+p.op, trace.WithSpanKind(trace.SpanKindProducer))
	if !span.SpanContext().IsValid() {
		return ctx, span
	}
	if span.IsRecording() {
		span.SetAttributes(attrOp.String(p.op), attrStrategy.String(string(s.cfg.LockStrategy)), attrStream.String(p.stream))
		if p.commandID != "" {
			span.SetAttributes(attrCommandID.String(p.commandID))
		}
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	md := make(Metadata, len(p.metadata)+len(carrier))
	maps.Copy(md, carrier)
	// The caller's keys win: an application that writes its own
	// traceparent knows better.
	maps.Copy(md, p.metadata)
	p.metadata = md
	return ctx, span
}

// endSpan records the outcome of a dispatch on its span and ends it.
func endSpan(span trace.Span, out *outcome, attempts int, err error) {
	if span.IsRecording() {
		outcome := outcomeOf(err)
		if out != nil && out.duplicate {
			outcome = "duplicate"
		}
		span.SetAttributes(attrOutcome.String(outcome), attrAttempts.Int(attempts))
		if out != nil {
			positions := make([]int64, len(out.records))
			for i, r := range out.records {
				positions[i] = int64(r.Position)
			}
			span.SetAttributes(attrPositions.Int64Slice(positions), attrDuplicate.Bool(out.duplicate))
		}
		if err != nil && outcome != "rejected" {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// ContextFromMetadata returns ctx carrying the remote span context that md
// (an event's metadata, or a job's) holds under the W3C keys, if any: a
// span started from it joins the trace of the command that wrote the
// event.
func ContextFromMetadata(ctx context.Context, md map[string]string) context.Context {
	if md[MetadataTraceParent] == "" {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier(md))
}

// SpanContextFromMetadata returns the span context md holds, or an invalid
// one; for span links (a projection batch links to the traces of the
// events it applies).
func SpanContextFromMetadata(md map[string]string) trace.SpanContext {
	if md[MetadataTraceParent] == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), propagation.MapCarrier(md)))
}
