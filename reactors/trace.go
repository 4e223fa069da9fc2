package reactors

import (
	"context"
	"encoding/json"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/riversql"
	"github.com/factos-go/factos/outbox"
)

// This file holds the reaction and effect workers' tracing and the River
// tags and metadata of effect jobs. A reaction job's metadata carries the
// W3C trace context of the dispatch that wrote its events (the outbox puts
// it there); the reaction's span continues that trace as its child, and
// the effect jobs it enqueues carry the reaction span's context, so an
// effect's span is the reaction's child, and whatever the effect's handler
// calls with the context it is given (a workflow it starts, through a
// client that propagates the trace) is the effect's. One command, one
// trace.
//
// The spans are parented, not linked as rivercontrib/otelriver's are: a
// reaction is part of the command's work, however late it runs.

// TracerName is the instrumentation name of the workers' tracer.
const TracerName = "github.com/factos-go/factos/reactors"

// Metadata keys of effect jobs, beside those of outbox.JobMetadata.
const (
	MetadataEventID   = "event_id"
	MetadataEventType = "event_type"
	MetadataPosition  = "position"
	// MetadataOrderingKey: an ordered effect's ordering key.
	MetadataOrderingKey = "ordering_key"
)

func (r *Registry) tracer() trace.Tracer {
	tp := r.cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(TracerName)
}

// startJobSpan starts a worker's span as the child of the span context the
// job's metadata carries, if any.
func (r *Registry) startJobSpan(ctx context.Context, name string, metadata []byte, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	var md map[string]any
	if len(metadata) > 0 && json.Unmarshal(metadata, &md) == nil {
		if tp, ok := md[eventstore.MetadataTraceParent].(string); ok {
			carrier := propagation.MapCarrier{eventstore.MetadataTraceParent: tp}
			if ts, ok := md[eventstore.MetadataTraceState].(string); ok {
				carrier[eventstore.MetadataTraceState] = ts
			}
			ctx = propagation.TraceContext{}.Extract(ctx, carrier)
		}
	}
	ctx, span := r.tracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// endJobSpan ends a worker's span with the job's error.
func endJobSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// effectJobMetadata is the metadata of the effect jobs a reaction
// enqueues: the reaction span's trace context, the command id the reaction
// job carries, and the originating event.
func effectJobMetadata(ctx context.Context, reactionMD map[string]string, rec eventstore.RawRecord, orderingKey string) ([]byte, error) {
	trace := eventstore.Metadata{}
	propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(trace))
	// The command id of the reaction job, or else the event's own (a
	// replayed or re-planned effect's reaction job has none of its own).
	cmd := reactionMD[outbox.MetadataCommandID]
	if cmd == "" {
		cmd = rec.Metadata[outbox.MetadataCommandID]
	}
	md := outbox.JobMetadata(trace, cmd, rec.Stream)
	md[MetadataEventID] = rec.ID.String()
	md[MetadataEventType] = rec.Type
	md[MetadataPosition] = strconv.FormatInt(int64(rec.Position), 10)
	if orderingKey != "" {
		md[MetadataOrderingKey] = orderingKey
	}
	return json.Marshal(md)
}

// effectJobTags are the River tags of an effect job: its event's type and
// stream, and an ordered effect's SequenceTag, by which River UI finds
// every effect of one ordering key.
func effectJobTags(rec eventstore.RawRecord, orderingKey string) string {
	tags := riversql.Tags(rec.Type, rec.Stream)
	if orderingKey != "" {
		tags = append(tags, SequenceTag(orderingKey))
	}
	out := ""
	for i, t := range tags {
		if i > 0 {
			out += ","
		}
		out += t
	}
	return out
}

// jobMetadata decodes the string values of a job's metadata.
func jobMetadata(metadata []byte) map[string]string {
	var raw map[string]any
	_ = json.Unmarshal(metadata, &raw)
	md := map[string]string{}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			md[k] = s
		}
	}
	return md
}
