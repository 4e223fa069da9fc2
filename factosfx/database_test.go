package factosfx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testdb"
)

// A database that cannot be used says why in one plain sentence with what
// to check, never the driver's message twice.
func TestDatabaseErrorsSayWhatToCheck(t *testing.T) {
	t.Parallel()
	admin, err := url.Parse(testdb.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(u *url.URL)) string {
		u := *admin
		f(&u)
		return u.String()
	}
	closed := freeAddr(t)
	silent := silentServer(t)
	for _, tc := range []struct {
		name, url string
		want      string
	}{
		{"nothing listens", "postgres://app:hunter2@" + closed + "/factos?sslmode=prefer",
			`cannot use the database at ` + closed + ` (database "factos", user "app"): the connection was refused. Is PostgreSQL running there, and is DATABASE_URL right?`},
		{"no such host", "postgres://app:hunter2@db.invalid:5432/factos",
			`cannot use the database at db.invalid:5432 (database "factos", user "app"): the host name "db.invalid" was not found. Is the host name in DATABASE_URL right?`},
		{"no answer", "postgres://app:hunter2@" + silent + "/factos",
			`cannot use the database at ` + silent + ` (database "factos", user "app"): no answer in time. Is PostgreSQL running there, does a firewall drop the packets, and is DATABASE_URL right?`},
		{"no such database", with(func(u *url.URL) { u.Path = "/no_such_db" }),
			fmt.Sprintf(`cannot use the database at %s (database "no_such_db", user %q): there is no database "no_such_db". Create it, or fix the database name in DATABASE_URL.`, admin.Host, admin.User.Username())},
		{"no such role", with(func(u *url.URL) { u.User = url.UserPassword("no_such_role", "hunter2") }),
			fmt.Sprintf(`cannot use the database at %s (database %q, user "no_such_role"): the server refused this client: role "no_such_role" does not exist. Is the user in DATABASE_URL right, and may it connect from here (pg_hba.conf)?`, admin.Host, strings.TrimPrefix(admin.Path, "/"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, err := pgxpool.New(context.Background(), tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = factosfx.PingDatabase(ctx, pool)
			var de *factosfx.DatabaseError
			if !errors.As(err, &de) || err.Error() != tc.want {
				t.Fatalf("\n got %v\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the message leaks the password: %v", err)
			}
		})
	}
}

func TestPingDatabase(t *testing.T) {
	t.Parallel()
	if err := factosfx.PingDatabase(context.Background(), testdb.New(t)); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), "postgres://app@"+freeAddr(t)+"/factos")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var de *factosfx.DatabaseError
	if err := factosfx.PingDatabase(context.Background(), pool); !errors.As(err, &de) || de.Problem != "the connection was refused" {
		t.Fatalf("err = %v, want a DatabaseError", err)
	}
}

// Errors that are not about connecting pass through.
func TestExplainDatabaseErrorKeepsOtherErrors(t *testing.T) {
	t.Parallel()
	other := errors.New("duplicate key")
	if factosfx.ExplainDatabaseError(other) != other || factosfx.ExplainDatabaseError(nil) != nil {
		t.Fatal("changed an error that is not a connection failure")
	}
}

// silentServer accepts connections and never answers, like a host behind
// a firewall that lets the handshake through.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return l.Addr().String()
}
