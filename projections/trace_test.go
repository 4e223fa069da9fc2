package projections_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/factos-go/factos/eventstore"
)

// A projection batch's span is linked to the traces of the commands whose
// events it applies.
func TestBatchSpanLinksTheEventsTraces(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	store, err := eventstore.New(b.pool, &eventstore.Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	want := map[trace.TraceID]bool{}
	var last eventstore.Position
	for i := range 3 {
		ctx, span := tp.Tracer("test").Start(context.Background(), "command")
		res, err := store.Append(ctx, eventstore.AppendRequest{Stream: "note-" + string(rune('a'+i)),
			Events: []eventstore.EventData{{Type: "Noted", Data: []byte("x")}}})
		span.End()
		if err != nil {
			t.Fatal(err)
		}
		want[span.SpanContext().TraceID()] = true
		last = res.Records[0].Position
	}
	cfg := testConfig("p1")
	cfg.TracerProvider = tp
	c := b.client(cfg, spec{name: "traced", query: eventstore.AllEvents(), applier: "p1"})
	b.start(c)
	if err := c.WaitFor(context.Background(), "traced", last); err != nil {
		t.Fatal(err)
	}
	got := map[trace.TraceID]bool{}
	for _, s := range spans.GetSpans() {
		if s.Name != "factos.projection traced" {
			continue
		}
		if s.Parent.IsValid() {
			t.Errorf("batch span has a parent %v; want a root linked to the commands", s.Parent)
		}
		for _, l := range s.Links {
			got[l.SpanContext.TraceID()] = true
		}
	}
	for id := range want {
		if !got[id] {
			t.Errorf("no batch span links trace %s (links: %v)", id, got)
		}
	}
}
