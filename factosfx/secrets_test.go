package factosfx_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.uber.org/fx"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testlog"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/internal/testtemporal"
	"github.com/factos-go/factos/reactors"
)

func randomHex(t *testing.T) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// execFormatted runs a utility statement (CREATE ROLE, GRANT ...), which
// cannot take bind parameters, built by the server's format() from
// parameters: %I quotes identifiers and %L literals.
func execFormatted(t *testing.T, ctx context.Context, pool *pgxpool.Pool, format string, args ...any) {
	t.Helper()
	var sql string
	if err := pool.QueryRow(ctx, "SELECT format($1, VARIADIC $2::text[])", format, args).Scan(&sql); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// requirePassword makes the throwaway cluster authenticate role over TCP
// with SCRAM instead of trusting it, so that the password in the worker's
// connection string is really used, and a wrong one really fails. The
// line is role-specific: the other tests keep trust authentication.
func requirePassword(t *testing.T, ctx context.Context, admin *pgxpool.Pool, role, dsnWithPassword, dsnWrongPassword string) {
	t.Helper()
	var hbaFile string
	if err := admin.QueryRow(ctx, "SHOW hba_file").Scan(&hbaFile); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(hbaFile)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("host all %s 127.0.0.1/32 scram-sha-256\n", role)
	if err := os.WriteFile(hbaFile, append([]byte(line), orig...), 0o600); err != nil {
		t.Fatal(err)
	}
	reload := func() {
		if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() {
		if err := os.WriteFile(hbaFile, orig, 0o600); err != nil {
			t.Error(err)
		}
		reload()
	})
	reload()
	// The postmaster rereads the file asynchronously: wait until a wrong
	// password is refused, then check that the right one is accepted.
	testriver.WaitFor(t, 30*time.Second, "password authentication for "+role, func() (bool, error) {
		conn, err := pgx.Connect(ctx, dsnWrongPassword)
		if err == nil {
			_ = conn.Close(ctx)
			return false, nil
		}
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code == "28P01", nil
	})
	conn, err := pgx.Connect(ctx, dsnWithPassword)
	if err != nil {
		t.Fatalf("the right password is refused: %v", err)
	}
	_ = conn.Close(ctx)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func ticketDomain() factosfx.Domain {
	codec := tickets.NewCodec()
	return factosfx.Domain{
		Name: "tickets",
		Reactors: func(reg *reactors.Registry, env factosfx.DomainEnv) error {
			return tickets.RegisterReactions(reg, codec, env.Pool)
		},
		Commands:     func(reg *activities.Registry) error { return tickets.RegisterCommands(reg, codec) },
		DomainErrors: tickets.DomainErrors,
	}
}

// checkNoSecrets fails the test for every secret found in emitted, showing
// where.
func checkNoSecrets(t *testing.T, secrets map[string]string, emitted string) {
	t.Helper()
	for what, secret := range secrets {
		if i := strings.Index(emitted, secret); i >= 0 {
			t.Errorf("the %s leaks: ...%s...", what, emitted[max(0, i-200):min(len(emitted), i+len(secret)+50)])
		}
	}
}

// The database password and the River UI credentials never appear in what
// the process emits. The whole fx app runs in-process, at debug level,
// against a real PostgreSQL that checks the password, with River UI on;
// it is driven through its work and its failure paths (a wrong password, a
// connection string pgx refuses), and every log line (fx's own events
// included), every HTTP response (status, headers and body: /healthz,
// /readyz, /metrics, River UI with no, wrong and right credentials) and
// every error is searched for the secrets.
func TestSecretsStayOutOfLogsErrorsAndMetrics(t *testing.T) {
	t.Parallel()
	if testdb.Server() == nil {
		t.Skip("needs the throwaway cluster, whose authentication the test changes for its own role")
	}
	ctx := context.Background()
	adminURL := testdb.NewURL(t)
	admin := testdb.Pool(t, adminURL)
	if err := tickets.Migrate(ctx, admin); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	dbName := strings.TrimPrefix(u.Path, "/")

	suffix := randomHex(t)
	role := "factos_secret_" + suffix
	secrets := map[string]string{
		"database password":       "db-pass-" + randomHex(t),
		"wrong database password": "wrong-pass-" + randomHex(t),
		"River UI username":       "ui-user-" + randomHex(t),
		"River UI password":       "ui-pass-" + randomHex(t),
	}
	dbPass, wrongPass := secrets["database password"], secrets["wrong database password"]
	uiUser, uiPass := secrets["River UI username"], secrets["River UI password"]

	execFormatted(t, ctx, admin, "CREATE ROLE %I LOGIN PASSWORD %L", role, dbPass)
	t.Cleanup(func() {
		execFormatted(t, ctx, admin, "DROP OWNED BY %I", role)
		execFormatted(t, ctx, admin, "DROP ROLE %I", role)
	})
	execFormatted(t, ctx, admin, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I", role)
	execFormatted(t, ctx, admin, "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I", role)

	urlWith := func(pass string) string {
		return (&url.URL{Scheme: "postgres", User: url.UserPassword(role, pass), Host: u.Host, Path: "/" + dbName, RawQuery: "sslmode=disable"}).String()
	}
	requirePassword(t, ctx, admin, role, urlWith(dbPass), urlWith(wrongPass))

	// The cases share the database, so they run one after another: two
	// River clients would work each other's jobs.
	for _, tc := range []struct {
		name    string
		dsn     string
		ready   bool // the right password: the worker gets ready and works
		refused bool // pgx refuses the connection string: LoadConfig does
	}{
		{name: "URL", dsn: urlWith(dbPass), ready: true},
		{name: "key=value", dsn: fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable", host, port, role, dbPass, dbName), ready: true},
		{name: "wrong password", dsn: urlWith(wrongPass)},
		{name: "refused by pgx", dsn: urlWith(dbPass) + "&connect_timeout=soon", refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			cfg, err := factosfx.LoadConfig(env(map[string]string{
				"DATABASE_URL": tc.dsn, "TEMPORAL_ENABLED": "false", "HTTP_ADDR": addr, "LOG_LEVEL": "debug",
				"RIVERUI_ENABLED": "true", "RIVERUI_USERNAME": uiUser, "RIVERUI_PASSWORD": uiPass, "SHUTDOWN_TIMEOUT": "5s",
			}))
			if tc.refused {
				var ce *factosfx.ConfigError
				if !errors.As(err, &ce) || ce.Var != "DATABASE_URL" {
					t.Fatalf("err = %v, want a ConfigError naming DATABASE_URL", err)
				}
				for what, secret := range secrets {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the %s leaks: %v", what, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			logs := &testlog.Buffer{}
			logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			var emitted strings.Builder // everything else the process said
			defer func() {
				checkNoSecrets(t, secrets, logs.String()+emitted.String())
				if t.Failed() {
					t.Logf("logs:\n%s", logs.String())
				}
			}()

			var store *eventstore.Store
			app := fx.New(
				factosfx.Options(cfg, ticketDomain()),
				// Every component logs through this logger, and so do fx's
				// own events (fx.WithLogger builds on it).
				fx.Decorate(func(*slog.Logger) *slog.Logger { return logger }),
				fx.Populate(&store),
			)
			if err := app.Err(); err != nil {
				t.Fatal(err)
			}
			if err := app.Start(ctx); err != nil {
				t.Fatal(err)
			}
			stopped := false
			stop := func() {
				if stopped {
					return
				}
				stopped = true
				stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := app.Stop(stopCtx); err != nil {
					fmt.Fprintln(&emitted, err)
					t.Errorf("stop: %v", err)
				}
			}
			defer stop()

			get := func(path string, creds ...string) (int, string) {
				t.Helper()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(creds) == 2 {
					req.SetBasicAuth(creds[0], creds[1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0, err.Error()
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				var h []string
				for k, vs := range resp.Header {
					h = append(h, k+": "+strings.Join(vs, ", "))
				}
				sort.Strings(h)
				fmt.Fprintf(&emitted, "GET %s: %s\n%s\n%s\n", path, resp.Status, strings.Join(h, "\n"), body)
				return resp.StatusCode, string(body)
			}

			if tc.ready {
				testriver.WaitFor(t, time.Minute, "the worker to be ready", func() (bool, error) {
					code, _ := get(factosfx.PathReady)
					return code == http.StatusOK, nil
				})
				// Work: a sale with a rejection, an invalid command, the
				// reactions and effects River runs for it.
				concert := "secrets-" + strings.ReplaceAll(tc.name, "=", "-")
				codec := tickets.NewCodec()
				if _, err := eventstore.Dispatch(ctx, store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: concert, Capacity: 2}, nil); err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					_, err := eventstore.Dispatch(ctx, store, tickets.BuyTicketHandler(codec), tickets.BuyTicket{ConcertID: concert, BuyerID: fmt.Sprint(i)}, nil)
					if err != nil {
						fmt.Fprintln(&emitted, err)
					}
					if (i < 2) != (err == nil) {
						t.Fatalf("buyer %d: %v", i, err)
					}
				}
				if _, err := eventstore.Dispatch(ctx, store, tickets.BuyTicketHandler(codec), tickets.BuyTicket{ConcertID: concert, BuyerID: "bad\x00"}, nil); !errors.Is(err, eventstore.ErrInvalidInput) {
					t.Fatalf("invalid buyer: %v", err)
				} else {
					fmt.Fprintln(&emitted, err)
				}
				testriver.WaitFor(t, time.Minute, "the announcements", func() (bool, error) {
					var n int
					err := admin.QueryRow(ctx, `SELECT count(*) FROM ticket_announcements WHERE concert_id = $1`, concert).Scan(&n)
					return n == 2, err
				})
			} else {
				testriver.WaitFor(t, time.Minute, "the worker to report the database", func() (bool, error) {
					return strings.Contains(logs.String(), "waiting for the database"), nil
				})
				if code, body := get(factosfx.PathReady); code != http.StatusServiceUnavailable || !strings.Contains(body, `"database":"unreachable"`) {
					t.Fatalf("readyz with a wrong password: %d %s", code, body)
				}
			}

			get(factosfx.PathHealth)
			get(factosfx.PathReady)
			code, metrics := get(factosfx.PathMetrics)
			if code != http.StatusOK || !strings.Contains(metrics, "factos_pool_connections") {
				t.Fatalf("metrics: %d %s", code, metrics)
			}
			if tc.ready && !strings.Contains(metrics, `factos_dispatches_total{op="dispatch",outcome="invalid",strategy="keys"} 1`) {
				t.Errorf("metrics lack the invalid dispatch")
			}
			for _, creds := range [][]string{nil, {uiUser, wrongPass}, {uiPass, uiUser}} {
				if code, _ := get("/riverui/", creds...); code != http.StatusUnauthorized {
					t.Errorf("River UI with %d wrong credentials: %d", len(creds), code)
				}
			}
			if code, _ := get("/riverui/", uiUser, uiPass); code != http.StatusOK {
				t.Errorf("River UI with the credentials: %d", code)
			}
			get("/riverui/api/jobs?state=completed", uiUser, uiPass)
			stop()

			// The capture saw the process: the start-up line, fx's events,
			// and the components' lines.
			lines := logs.String()
			for _, want := range []string{`"msg":"starting factos worker"`, `"msg":"provided"`, `"msg":"started"`, `"msg":"database pool closed"`} {
				if !strings.Contains(lines, want) {
					t.Errorf("logs lack %s", want)
				}
			}
			if tc.ready && !strings.Contains(lines, `"msg":"River started"`) {
				t.Errorf("logs lack River's start")
			}
		})
	}
}

// The Temporal API key and the client's private key never appear in what
// the process emits. The whole worker runs in-process at debug level
// against the real Temporal dev server behind a Temporal Cloud-like front
// door (see temporalGate), with the key given inline, through its work and
// its failure paths: a wrong API key, which the front door refuses, and
// configuration errors about the key. Every log line, HTTP response and
// error is searched for the key, each line of the private key's PEM body,
// and the wrong key.
func TestTemporalSecretsStayOutOfLogsAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newTemporalTLSEnv(t)
	secrets := map[string]string{"Temporal API key": e.apiKey, "wrong Temporal API key": "tcak-wrong-" + randomHex(t)}
	for i, line := range strings.Split(string(e.client.KeyPEM), "\n") {
		if !strings.HasPrefix(line, "-----") && len(line) >= 16 {
			secrets[fmt.Sprintf("private key, line %d", i)] = line
		}
	}
	dbURL := testdb.NewURL(t)
	if err := tickets.Migrate(ctx, testdb.Pool(t, dbURL)); err != nil {
		t.Fatal(err)
	}
	inline := func(apiKey string) map[string]string {
		v := e.vars()
		delete(v, "TEMPORAL_TLS_CLIENT_CERT_PATH")
		delete(v, "TEMPORAL_TLS_CLIENT_KEY_PATH")
		v["TEMPORAL_TLS_CLIENT_CERT_DATA"], v["TEMPORAL_TLS_CLIENT_KEY_DATA"] = string(e.client.CertPEM), string(e.client.KeyPEM)
		v["TEMPORAL_API_KEY"] = apiKey
		v["DATABASE_URL"], v["LOG_LEVEL"], v["SHUTDOWN_TIMEOUT"] = dbURL, "debug", "5s"
		return v
	}

	// Configuration errors about the key: another certificate, the key
	// with its line breaks lost, TLS turned off.
	var emitted strings.Builder
	for _, edit := range []func(v map[string]string){
		func(v map[string]string) {
			v["TEMPORAL_TLS_CLIENT_CERT_DATA"] = string(e.clientCA.issueNow(t, "other", false).CertPEM)
		},
		func(v map[string]string) {
			v["TEMPORAL_TLS_CLIENT_KEY_DATA"] = strings.ReplaceAll(v["TEMPORAL_TLS_CLIENT_KEY_DATA"], "\n", `\n`)
		},
		func(v map[string]string) {
			v["TEMPORAL_TLS_CLIENT_KEY_DATA"] = strings.TrimSuffix(v["TEMPORAL_TLS_CLIENT_KEY_DATA"], "-----END PRIVATE KEY-----\n")
		},
		func(v map[string]string) { v["TEMPORAL_TLS"] = "false" },
		func(v map[string]string) { v["TEMPORAL_API_KEY"] += " " + secrets["wrong Temporal API key"] },
	} {
		v := inline(e.apiKey)
		edit(v)
		_, err := factosfx.LoadConfig(env(v))
		if err == nil {
			t.Fatalf("LoadConfig accepted %v", v)
		}
		fmt.Fprintln(&emitted, err)
	}
	checkNoSecrets(t, secrets, emitted.String())

	// Run sequentially: both workers poll the same task queue.
	queue := testtemporal.UniqueID("tls-secrets")
	for _, tc := range []struct {
		name  string
		key   string
		ready bool
	}{
		{"right key", e.apiKey, true},
		{"wrong key", secrets["wrong Temporal API key"], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := inline(tc.key)
			addr := freeAddr(t)
			v["HTTP_ADDR"], v["TEMPORAL_TASK_QUEUE"] = addr, queue
			cfg, err := factosfx.LoadConfig(env(v))
			if err != nil {
				t.Fatal(err)
			}
			logs := &testlog.Buffer{}
			var emitted strings.Builder
			get := func(path string) (int, string) {
				code, body := httpGet(t, "http://"+addr+path)
				fmt.Fprintf(&emitted, "GET %s: %d\n%s\n", path, code, body)
				return code, body
			}
			func() {
				domain := ticketDomain()
				domain.Workflows = tickets.RegisterWorkflows
				stop := startApp(t, cfg, domain, logs)
				defer stop()
				if tc.ready {
					testriver.WaitFor(t, time.Minute, "the worker to be ready", func() (bool, error) {
						code, _ := get(factosfx.PathReady)
						return code == http.StatusOK, nil
					})
					c, err := dialWith(t, e.vars())
					if err != nil {
						t.Fatal(err)
					}
					run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: testtemporal.UniqueID("buy"), TaskQueue: queue},
						tickets.BuyTicketWorkflow, tickets.BuyTicket{ConcertID: testtemporal.UniqueID("no-such-concert"), BuyerID: "b"})
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintln(&emitted, run.Get(ctx, nil)) // the concert does not exist: a rejection
				} else {
					testriver.WaitFor(t, time.Minute, "the worker to report the refusal", func() (bool, error) {
						return strings.Contains(logs.String(), "Request unauthorized"), nil
					})
					if code, body := get(factosfx.PathReady); code != http.StatusServiceUnavailable || !strings.Contains(body, `"temporal":"not started"`) {
						t.Errorf("readyz with a wrong API key: %d %s", code, body)
					}
				}
				get(factosfx.PathMetrics)
			}()
			checkNoSecrets(t, secrets, logs.String()+emitted.String())
			if line := firstLine(logs.String(), "starting factos worker"); !strings.Contains(line, `"temporal_client_cert":"inline"`) {
				t.Errorf("start-up line: %s", line)
			}
		})
	}
}
