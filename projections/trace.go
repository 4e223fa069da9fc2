package projections

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/factos-go/factos/eventstore"
)

// TracerName is the instrumentation name of the projections' tracer.
const TracerName = "github.com/factos-go/factos/projections"

// maxLinks bounds the links of one batch span: a batch of thousands of
// events from as many commands would otherwise carry thousands of links
// (the SDK keeps 128 by default anyway).
const maxLinks = 128

// startBatchSpan starts the span of one applied batch, a root span linked
// to the distinct traces of its records.
func (c *Client) startBatchSpan(ctx context.Context, projection string, records []eventstore.RawRecord) (context.Context, trace.Span) {
	tp := c.cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	tracer := tp.Tracer(TracerName)
	var links []trace.Link
	seen := map[trace.TraceID]bool{}
	for _, rec := range records {
		if len(links) == maxLinks {
			break
		}
		sc := eventstore.SpanContextFromMetadata(rec.Metadata)
		if sc.IsValid() && !seen[sc.TraceID()] {
			seen[sc.TraceID()] = true
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return tracer.Start(ctx, "factos.projection "+projection, trace.WithNewRoot(), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("factos.projection", projection), attribute.Int("factos.events", len(records)),
			attribute.Int64("factos.position.first", int64(records[0].Position)),
			attribute.Int64("factos.position.last", int64(records[len(records)-1].Position))))
}

func endBatchSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
