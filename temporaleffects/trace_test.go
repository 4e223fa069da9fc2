package temporaleffects_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/internal/testtemporal"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// payWorkflow sends one command: the payment of a reservation.
func payWorkflow(ctx workflow.Context, reservationID string) error {
	_, err := activities.ExecuteCommand(ctx, tickets.CmdRecordPayment,
		tickets.RecordPayment{ReservationID: reservationID, AmountCents: 4200},
		&activities.CommandOptions{CommandID: activities.NewCommandID(ctx)})
	return err
}

// One command sent from a workflow yields one trace: the workflow, its
// activity, the dispatch, the reaction job and the effect job (which
// signals another workflow), each the descendant of the one before, with
// the real Temporal dev server, River and PostgreSQL. The River jobs of
// that command carry tags and metadata a person can find them by.
func TestOneTraceFromWorkflowToEffect(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	codec := tickets.NewCodec()

	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer: tp.Tracer("temporal"), TextMapPropagator: propagation.TraceContext{}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: testtemporal.Address(), Namespace: testtemporal.Namespace(),
		Interceptors: []interceptor.ClientInterceptor{ti}, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	queue := testtemporal.UniqueID("trace")

	rreg := reactors.NewRegistry(&reactors.Config{TracerProvider: tp})
	if err := temporaleffects.Add(rreg, temporaleffects.Adapter{Client: c, TaskQueue: queue}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tickets.RegisterPaymentSignals(rreg, codec); err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, pool, rreg, &testriver.Opts{StoreConfig: &eventstore.Config{TracerProvider: tp}})
	areg := startTicketWorker(t, c, queue, env.Store, codec, func(w worker.Worker) { w.RegisterWorkflow(payWorkflow) })

	if _, err := areg.Dispatch(ctx, tickets.CmdScheduleConcert, "s", []byte(`{"concert_id":"c1","capacity":2}`), nil); err != nil {
		t.Fatal(err)
	}
	resID := testtemporal.UniqueID("res")
	saga, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: tickets.ReservationWorkflowID(resID), TaskQueue: queue},
		tickets.ReservationWorkflow, tickets.Reservation{ConcertID: "c1", BuyerID: "b1", ReservationID: resID, PaymentWithin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	testriver.WaitFor(t, 30*time.Second, "the reservation to be held", func() (bool, error) {
		res, err := env.Store.Read(ctx, eventstore.NewQuery(eventstore.Tags(tickets.ReservationTag(resID))))
		return err == nil && len(res.Records) == 1, err
	})

	// The command under test, in a trace of its own.
	rootCtx, root := tp.Tracer("test").Start(ctx, "test")
	run, err := c.ExecuteWorkflow(rootCtx, client.StartWorkflowOptions{ID: testtemporal.UniqueID("pay"), TaskQueue: queue}, payWorkflow, resID)
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var out tickets.ReservationOutcome
	if err := saga.Get(ctx, &out); err != nil || out.Status != tickets.StatusConfirmed {
		t.Fatalf("saga: %+v %v, want confirmed (the effect signals it)", out, err)
	}
	traceID := root.SpanContext().TraceID()
	find := func(prefix string) *tracetest.SpanStub {
		for _, s := range spans.GetSpans() {
			if s.SpanContext.TraceID() == traceID && strings.HasPrefix(s.Name, prefix) {
				return &s
			}
		}
		return nil
	}
	// The effect's span ends after the signal it sends.
	testriver.WaitFor(t, 30*time.Second, "the effect's span", func() (bool, error) {
		return find("factos.effect ") != nil, nil
	})

	// Each span's ancestors, nearest first, must contain the previous
	// stages in order: workflow, activity, dispatch, reaction, effect.
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		if s.SpanContext.TraceID() == traceID {
			byID[s.SpanContext.SpanID()] = s
		}
	}
	var chain []string
	for s, ok := *find("factos.effect "), true; ok; s, ok = byID[s.Parent.SpanID()] {
		chain = append(chain, s.Name)
	}
	slices.Reverse(chain)
	t.Logf("trace %s: %s", traceID, strings.Join(chain, " > "))
	want := []string{"RunWorkflow:payWorkflow", "RunActivity:", "factos.dispatch", "factos.reaction", "factos.effect "}
	i := 0
	for _, name := range chain {
		if i < len(want) && strings.HasPrefix(name, want[i]) {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("span chain %q lacks %q in order", chain, want[i:])
	}
	if find("SignalWorkflow:") == nil {
		t.Errorf("the effect's signal is not in the trace")
	}
	dispatch := find("factos.dispatch")
	attrs := map[string]string{}
	for _, a := range dispatch.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	for _, k := range []string{"factos.strategy", "factos.stream", "factos.attempts", "factos.positions", "factos.outcome", "factos.command_id"} {
		if attrs[k] == "" {
			t.Errorf("dispatch span lacks %s: %v", k, attrs)
		}
	}
	if attrs["factos.outcome"] != "committed" {
		t.Errorf("dispatch outcome %q", attrs["factos.outcome"])
	}

	// River jobs of the command: found by the trace id, tagged by stream
	// and event type, with the command id and the originating event.
	rows, err := pool.Query(ctx, `SELECT kind, tags, metadata, args FROM river_job WHERE metadata->>'trace_id' = $1 ORDER BY id`, traceID.String())
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		Kind     string
		Tags     []string
		Metadata map[string]any
		Args     map[string]any
	}
	var jobs []job
	for rows.Next() {
		var j job
		var md, args []byte
		if err := rows.Scan(&j.Kind, &j.Tags, &md, &args); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(md, &j.Metadata)
		_ = json.Unmarshal(args, &j.Args)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Kind != "factos.reactions" || !strings.HasPrefix(jobs[1].Kind, reactors.EffectKindPrefix) {
		t.Fatalf("jobs of the trace: %+v, want a reaction and an effect", jobs)
	}
	stream := tickets.PaymentStream(resID)
	for _, j := range jobs {
		if !slices.Contains(j.Tags, stream) || !slices.Contains(j.Tags, tickets.TypePaymentReceived) {
			t.Errorf("%s tags %v, want %s and %s", j.Kind, j.Tags, stream, tickets.TypePaymentReceived)
		}
		if j.Metadata["command_id"] == nil || j.Metadata["command_id"] == "" || j.Metadata["traceparent"] == nil || j.Metadata["stream"] != stream {
			t.Errorf("%s metadata %v lacks the command id, trace context or stream", j.Kind, j.Metadata)
		}
	}
	eff := jobs[1]
	if eff.Metadata["event_type"] != tickets.TypePaymentReceived || eff.Metadata["event_id"] == nil || eff.Metadata["position"] == nil {
		t.Errorf("effect metadata %v lacks the originating event", eff.Metadata)
	}
	if eff.Args["event_type"] != tickets.TypePaymentReceived {
		t.Errorf("effect args %v do not name the event type", eff.Args)
	}
	if evs, _ := jobs[0].Metadata["events"].([]any); len(evs) != 1 {
		t.Errorf("reaction metadata events %v, want the payment", jobs[0].Metadata["events"])
	}
}
