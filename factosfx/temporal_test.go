package factosfx_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/fx"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testlog"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/internal/testtemporal"
)

// Every wrong Temporal TLS or API key setting is refused by LoadConfig,
// naming the variable, quoting its value (never a key), saying what is
// wrong and what the variable accepts.
func TestTemporalTLSConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "factos test CA")
	client1, client2 := ca.issueNow(t, "worker-1", false), ca.issueNow(t, "worker-2", false)
	// Whole seconds: a certificate's times have no fractions.
	expiredAt, validFrom := time.Now().Add(-time.Hour).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)
	expired := ca.issue(t, "worker-old", false, time.Now().Add(-48*time.Hour), expiredAt)
	future := ca.issue(t, "worker-new", false, validFrom, time.Now().Add(48*time.Hour))
	caPath := writeFile(t, dir, "ca.pem", ca.PEM)
	cert1 := writeFile(t, dir, "client1.crt", client1.CertPEM)
	key1 := writeFile(t, dir, "client1.key", client1.KeyPEM)
	key2 := writeFile(t, dir, "client2.key", client2.KeyPEM)
	expiredCert, expiredKey := writeFile(t, dir, "old.crt", expired.CertPEM), writeFile(t, dir, "old.key", expired.KeyPEM)
	futureCert, futureKey := writeFile(t, dir, "new.crt", future.CertPEM), writeFile(t, dir, "new.key", future.KeyPEM)
	notPEM := writeFile(t, dir, "ca.txt", []byte("this is not a certificate\n"))
	keyAsCA := writeFile(t, dir, "key-as-ca.pem", client1.KeyPEM)
	encryptedKey := writeFile(t, dir, "encrypted.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: bytes.Repeat([]byte{7}, 64)}))
	escapedCA := strings.ReplaceAll(string(ca.PEM), "\n", `\n`)
	// The key's base64 without its PEM lines, and half a certificate.
	var keyBody []string
	for _, line := range strings.Split(strings.TrimSpace(string(client1.KeyPEM)), "\n") {
		if !strings.HasPrefix(line, "-----") {
			keyBody = append(keyBody, line)
		}
	}
	halfCert := string(client1.CertPEM[:len(client1.CertPEM)/2])
	const apiKey = "tcak-0123456789abcdef"

	const (
		caP, caD     = "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_DATA"
		certP, certD = "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_DATA"
		keyP, keyD   = "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA"

		prefix    = "invalid configuration: "
		caFile    = "use the path of a readable PEM file holding the CA certificates that sign the Temporal server's certificate"
		caText    = "use the CA certificates that sign the Temporal server's certificate as PEM text"
		certFile  = "use the path of a readable PEM file holding the client certificate (its chain may follow it)"
		certText  = "use the client certificate (its chain may follow it) as PEM text"
		keyFile   = "use the path of a readable PEM file holding the client certificate's private key"
		keyText   = "use the client certificate's private key as PEM text"
		noCertPEM = "holds no complete PEM block (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)"
		validNow  = "use the path of a readable PEM file holding a client certificate valid now"
		tlsOff    = "true, or leave it unset (TLS then turns on by itself), or remove "
	)
	q := strconv.Quote
	for _, tc := range []struct {
		name string
		set  map[string]string
		var_ string
		want string // after "invalid configuration: "
		// syntax: the variable's own value is wrong, so the error stays
		// with Temporal off; the other checks are skipped then.
		syntax bool
	}{
		{"missing file", map[string]string{certP: dir + "/nope.crt", keyP: key1}, certP,
			certP + "=" + q(dir+"/nope.crt") + " cannot be read: no such file or directory; " + certFile, false},
		{"unreadable file", map[string]string{caP: dir}, caP,
			caP + "=" + q(dir) + " cannot be read: is a directory; " + caFile, false},
		{"cert and key not a pair", map[string]string{certP: cert1, keyP: key2}, keyP,
			keyP + "=" + q(key2) + " names a file that does not hold the private key of the certificate in " + certP +
				" (tls: private key does not match public key); use the path of a readable PEM file holding the private key of the certificate in " + certP, false},
		{"key without cert", map[string]string{keyP: key1}, keyP,
			keyP + "=" + q(key1) + " is set, but the client certificate is not; use it together with " + certP + " or " + certD + " (mutual TLS needs both)", false},
		{"inline key without cert", map[string]string{keyD: string(client1.KeyPEM)}, keyD,
			keyD + " (value hidden) is set, but the client certificate is not; use it together with " + certP + " or " + certD + " (mutual TLS needs both)", false},
		{"cert without key", map[string]string{certP: cert1}, certP,
			certP + "=" + q(cert1) + " is set, but the client certificate's private key is not; use it together with " + keyP + " or " + keyD + " (mutual TLS needs both)", false},
		{"CA not PEM", map[string]string{caP: notPEM}, caP,
			caP + "=" + q(notPEM) + " names a file that " + noCertPEM + "; " + caFile, false},
		{"CA file holds a key", map[string]string{caP: keyAsCA}, caP,
			caP + "=" + q(keyAsCA) + ` names a file that holds a "PRIVATE KEY" PEM block, where only CERTIFICATE blocks belong; ` + caFile, false},
		{"inline CA with escaped line breaks", map[string]string{caD: escapedCA}, caD,
			caD + "=" + q(escapedCA[:40]+"...") + ` holds no PEM block: its line breaks are written as \n; ` + caText + ", with real line breaks", false},
		{"inline CA that is a path", map[string]string{caD: "/etc/ssl/factos-ca.pem"}, caD,
			caD + `="/etc/ssl/factos-ca.pem" holds a file's path, not PEM text; ` + caText + " (a file's path goes in " + caP + ")", false},
		{"inline CA that is a key without its PEM lines", map[string]string{caD: strings.Join(keyBody, "\n")}, caD,
			caD + " (value hidden) " + noCertPEM + "; " + caText, false},
		{"CA as path and data", map[string]string{caP: caPath, caD: string(ca.PEM)}, caP,
			caP + " and " + caD + " are both set; use one or the other: the server CA certificates as a file or as PEM text", false},
		{"half an inline cert", map[string]string{certD: halfCert, keyP: key1}, certD,
			certD + "=" + q(halfCert[:40]+"...") + " " + noCertPEM + "; " + certText, false},
		{"inline cert and key swapped", map[string]string{certD: string(client1.KeyPEM), keyD: string(client1.CertPEM)}, certD,
			certD + ` (value hidden) holds a "PRIVATE KEY" PEM block, where only CERTIFICATE blocks belong; ` + certText, false},
		{"cert as key", map[string]string{certP: cert1, keyP: cert1}, keyP,
			keyP + "=" + q(cert1) + ` names a file that holds a "CERTIFICATE" PEM block, not a private key; ` + keyFile, false},
		{"key PEM in the path variable", map[string]string{certP: cert1, keyP: string(client1.KeyPEM)}, keyP,
			keyP + " (value hidden) holds PEM text, not a file's path; " + keyFile + " (PEM text itself goes in " + keyD + ")", false},
		{"inline key not PEM", map[string]string{certP: cert1, keyD: "secret-but-not-pem"}, keyD,
			keyD + " (value hidden) holds no complete PEM block (-----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----); " + keyText, false},
		{"encrypted key", map[string]string{certP: cert1, keyP: encryptedKey}, keyP,
			keyP + "=" + q(encryptedKey) + " names a file that holds an encrypted private key, which the worker cannot decrypt; " +
				keyFile + ", unencrypted (openssl pkey -in encrypted.key -out plain.key decrypts it)", false},
		{"expired cert", map[string]string{certP: expiredCert, keyP: expiredKey}, certP,
			certP + "=" + q(expiredCert) + " names a file that holds a client certificate (CN=worker-old) that expired at " +
				expiredAt.UTC().Format(time.RFC3339) + "; " + validNow, false},
		{"cert not yet valid", map[string]string{certP: futureCert, keyP: futureKey}, certP,
			certP + "=" + q(futureCert) + " names a file that holds a client certificate (CN=worker-new) that is not valid before " +
				validFrom.UTC().Format(time.RFC3339) + " (if that time has passed, this machine's clock is wrong); " + validNow, false},
		{"API key without TLS", map[string]string{"TEMPORAL_API_KEY": apiKey, "TEMPORAL_TLS": "false"}, "TEMPORAL_API_KEY",
			"TEMPORAL_API_KEY (value hidden) needs TLS, but TEMPORAL_TLS is false: the key would travel in plain text in every request's headers " +
				"(and Temporal Cloud accepts TLS connections only); use it with TEMPORAL_TLS=true or with TEMPORAL_TLS unset", false},
		{"TLS off with certificates", map[string]string{"TEMPORAL_TLS": "0", certP: cert1, keyP: key1}, "TEMPORAL_TLS",
			"TEMPORAL_TLS is false, but " + certP + " and " + keyP + " are TLS settings; use " + tlsOff + certP + " and " + keyP, false},
		{"TLS off with a server name", map[string]string{"TEMPORAL_TLS": "false", "TEMPORAL_TLS_SERVER_NAME": "x.tmprl.cloud"}, "TEMPORAL_TLS",
			"TEMPORAL_TLS is false, but TEMPORAL_TLS_SERVER_NAME is a TLS setting; use " + tlsOff + "TEMPORAL_TLS_SERVER_NAME", false},
		{"TLS not a boolean", map[string]string{"TEMPORAL_TLS": "yes please"}, "TEMPORAL_TLS",
			`TEMPORAL_TLS="yes please" is not a boolean; use true or false (1, t, T, TRUE, True, 0, f, F, FALSE and False work too)`, true},
		{"API key with a space", map[string]string{"TEMPORAL_API_KEY": "tcak 0123"}, "TEMPORAL_API_KEY",
			"TEMPORAL_API_KEY (value hidden) has spaces or control characters in it; use the API key as one word, as Temporal Cloud issued it", true},
		{"API key of spaces", map[string]string{"TEMPORAL_API_KEY": " \n"}, "TEMPORAL_API_KEY",
			"TEMPORAL_API_KEY (value hidden) is blank; use the API key as one word, as Temporal Cloud issued it", true},
		{"blank server name", map[string]string{"TEMPORAL_TLS_SERVER_NAME": " "}, "TEMPORAL_TLS_SERVER_NAME",
			`TEMPORAL_TLS_SERVER_NAME=" " is blank; use a host name the Temporal server's certificate is issued for, such as ns.acct.tmprl.cloud`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"DATABASE_URL": "postgres://u:p@db/factos"}
			for k, v := range tc.set {
				vars[k] = v
			}
			_, err := factosfx.LoadConfig(env(vars))
			var ce *factosfx.ConfigError
			if !errors.As(err, &ce) || ce.Var != tc.var_ || err.Error() != prefix+tc.want {
				t.Fatalf("\n got %v\nwant a ConfigError naming %s: %s", err, tc.var_, prefix+tc.want)
			}
			for _, secret := range append([]string{apiKey, "tcak 0123", "secret-but-not-pem", string(client1.KeyPEM[30:60]), string(client2.KeyPEM[30:60])}, keyBody...) {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes a secret: %v", err)
				}
			}

			// Without Temporal, its TLS files are not read: a worker that
			// does not use Temporal does not fail on them.
			vars["TEMPORAL_ENABLED"] = "false"
			if _, err := factosfx.LoadConfig(env(vars)); (err != nil) != tc.syntax {
				t.Errorf("with TEMPORAL_ENABLED=false: %v", err)
			}
		})
	}

	// Every problem at once.
	_, err := factosfx.LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://u:p@db/factos", caP: notPEM, keyP: key1, "LOG_LEVEL": "loud"}))
	for _, name := range []string{caP, keyP, "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("err = %v, want it to name %s", err, name)
		}
	}
}

// TLS turns on by itself with an API key or any TLS setting, as with the
// temporal CLI, and TEMPORAL_TLS=true alone gives TLS with the system's
// roots (enough for Temporal Cloud with an API key).
func TestTemporalTLSTurnsOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, "factos test CA")
	caPath := writeFile(t, dir, "ca.pem", ca.PEM)
	for _, tc := range []struct {
		name    string
		set     map[string]string
		wantTLS bool
	}{
		{"nothing", nil, false},
		{"explicitly on", map[string]string{"TEMPORAL_TLS": "true"}, true},
		{"an API key", map[string]string{"TEMPORAL_API_KEY": "k"}, true},
		{"a CA", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": caPath}, true},
		{"an inline CA", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_DATA": string(ca.PEM)}, true},
		{"a server name", map[string]string{"TEMPORAL_TLS_SERVER_NAME": "ns.acct.tmprl.cloud"}, true},
		{"explicitly off", map[string]string{"TEMPORAL_TLS": "false"}, false},
	} {
		vars := map[string]string{"DATABASE_URL": "postgres://u:p@db/factos"}
		for k, v := range tc.set {
			vars[k] = v
		}
		cfg, err := factosfx.LoadConfig(env(vars))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.TemporalTLS != tc.wantTLS {
			t.Errorf("%s: TemporalTLS = %v, want %v", tc.name, cfg.TemporalTLS, tc.wantTLS)
		}
		opts, err := factosfx.TemporalClientOptions(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := opts.ConnectionOptions.TLS != nil; got != tc.wantTLS {
			t.Errorf("%s: client TLS = %v, want %v", tc.name, got, tc.wantTLS)
		}
		if got, want := opts.Credentials != nil, vars["TEMPORAL_API_KEY"] != ""; got != want {
			t.Errorf("%s: credentials = %v, want %v", tc.name, got, want)
		}
	}

	// A key read back from a file keeps its line break; it is trimmed.
	cfg, err := factosfx.LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://u:p@db/factos", "TEMPORAL_API_KEY": "tcak-abc\n"}))
	if err != nil || cfg.TemporalAPIKey != "tcak-abc" {
		t.Fatalf("key %q, err %v", cfg.TemporalAPIKey, err)
	}
}

// temporalTLSEnv is a Temporal Cloud-like set-up: a CA for the front
// door's certificate, a client certificate of another CA for mutual TLS,
// and an API key.
type temporalTLSEnv struct {
	gate             *temporalGate
	serverCA         *testCA
	clientCA         *testCA
	client           leaf
	apiKey           string
	caPath           string
	certPath         string
	keyPath          string
	serverName       string // on the front door's certificate, not its address
	dir              string
	frontDoorAddress string
}

func newTemporalTLSEnv(t *testing.T) *temporalTLSEnv {
	t.Helper()
	e := &temporalTLSEnv{dir: t.TempDir(), serverName: "ns.acct.tmprl.test", apiKey: "tcak-" + randomHex(t) + randomHex(t)}
	e.serverCA, e.clientCA = newTestCA(t, "front door CA"), newTestCA(t, "client CA")
	e.client = e.clientCA.issueNow(t, "factos-worker", false)
	e.gate = startTemporalGate(t, testtemporal.Address(), e.serverCA.issueNow(t, e.serverName, true).Pair(t), e.clientCA, e.apiKey)
	e.frontDoorAddress = e.gate.Addr
	e.caPath = writeFile(t, e.dir, "ca.pem", e.serverCA.PEM)
	e.certPath = writeFile(t, e.dir, "tls.crt", e.client.CertPEM)
	e.keyPath = writeFile(t, e.dir, "tls.key", e.client.KeyPEM)
	return e
}

// vars are the worker's variables for the front door, with files.
func (e *temporalTLSEnv) vars() map[string]string {
	return map[string]string{
		"TEMPORAL_ADDRESS":                 e.frontDoorAddress,
		"TEMPORAL_NAMESPACE":               testtemporal.Namespace(),
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": e.caPath,
		"TEMPORAL_TLS_CLIENT_CERT_PATH":    e.certPath,
		"TEMPORAL_TLS_CLIENT_KEY_PATH":     e.keyPath,
		"TEMPORAL_TLS_SERVER_NAME":         e.serverName,
		"TEMPORAL_API_KEY":                 e.apiKey,
	}
}

func dialWith(t *testing.T, vars map[string]string) (client.Client, error) {
	t.Helper()
	all := map[string]string{"DATABASE_URL": "postgres://u:p@db/factos"}
	for k, v := range vars {
		all[k] = v
	}
	cfg, err := factosfx.LoadConfig(env(all))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := factosfx.TemporalClientOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, opts)
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// The client's side of each refusal: every part of the set-up is needed,
// and a wrong one fails the dial with the reason.
func TestTemporalTLSDialRefusals(t *testing.T) {
	t.Parallel()
	e := newTemporalTLSEnv(t)
	other := newTestCA(t, "another CA").issueNow(t, "intruder", false)
	otherCert, otherKey := writeFile(t, e.dir, "other.crt", other.CertPEM), writeFile(t, e.dir, "other.key", other.KeyPEM)
	for _, tc := range []struct {
		name string
		edit func(v map[string]string)
		// want matches the dial error; empty: the dial succeeds. With TLS
		// 1.3 the server checks the client's certificate after the client
		// has finished its handshake, so the client sees either the
		// server's alert or the closed connection.
		want string
	}{
		{"everything", func(map[string]string) {}, ""},
		{"the client certificate given inline", func(v map[string]string) {
			v["TEMPORAL_TLS_CLIENT_CERT_DATA"], v["TEMPORAL_TLS_CLIENT_KEY_DATA"] = string(e.client.CertPEM), string(e.client.KeyPEM)
			delete(v, "TEMPORAL_TLS_CLIENT_CERT_PATH")
			delete(v, "TEMPORAL_TLS_CLIENT_KEY_PATH")
		}, ""},
		{"the CA given inline", func(v map[string]string) {
			v["TEMPORAL_TLS_SERVER_CA_CERT_DATA"] = string(e.serverCA.PEM)
			delete(v, "TEMPORAL_TLS_SERVER_CA_CERT_PATH")
		}, ""},
		{"a wrong API key", func(v map[string]string) { v["TEMPORAL_API_KEY"] = "tcak-wrong" }, "Request unauthorized"},
		{"no API key", func(v map[string]string) { delete(v, "TEMPORAL_API_KEY") }, "Request unauthorized"},
		{"no server CA: the system's roots do not know it", func(v map[string]string) { delete(v, "TEMPORAL_TLS_SERVER_CA_CERT_PATH") }, "certificate signed by unknown authority"},
		{"no server name: the address is not on the certificate", func(v map[string]string) { delete(v, "TEMPORAL_TLS_SERVER_NAME") }, "cannot validate certificate for 127.0.0.1"},
		{"no client certificate", func(v map[string]string) {
			delete(v, "TEMPORAL_TLS_CLIENT_CERT_PATH")
			delete(v, "TEMPORAL_TLS_CLIENT_KEY_PATH")
		}, "certificate required|broken pipe|connection reset"},
		{"a client certificate of another CA", func(v map[string]string) {
			v["TEMPORAL_TLS_CLIENT_CERT_PATH"], v["TEMPORAL_TLS_CLIENT_KEY_PATH"] = otherCert, otherKey
		}, "unknown certificate authority|broken pipe|connection reset"},
		{"no TLS at all", func(v map[string]string) {
			for k := range v {
				if strings.HasPrefix(k, "TEMPORAL_TLS") || k == "TEMPORAL_API_KEY" {
					delete(v, k)
				}
			}
		}, "error reading server preface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := e.vars()
			tc.edit(vars)
			c, err := dialWith(t, vars)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.CheckHealth(context.Background(), nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("dial error %v, want %q", err, tc.want)
			}
		})
	}
	t.Cleanup(func() { // after the parallel subtests
		if _, refused, clients := e.gate.counts(); refused == 0 || clients[e.client.Serial] == 0 || clients[other.Serial] != 0 {
			t.Errorf("front door: refused %d calls, calls by certificate %v (the worker's is %s)", refused, clients, e.client.Serial)
		}
	})
}

// A client certificate given as files is read again at every new
// connection: after a rotation, the same client options present the new
// certificate, and files caught mid-rotation do not break the next
// connection.
func TestTemporalClientCertificateRotation(t *testing.T) {
	t.Parallel()
	e := newTemporalTLSEnv(t)
	all := e.vars()
	all["DATABASE_URL"] = "postgres://u:p@db/factos"
	cfg, err := factosfx.LoadConfig(env(all))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	opts, err := factosfx.TemporalClientOptions(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	dial := func() {
		t.Helper()
		c, err := client.Dial(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.CheckHealth(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	dial()
	next := e.clientCA.issueNow(t, "factos-worker", false)
	writeFile(t, e.dir, "tls.crt", next.CertPEM)
	writeFile(t, e.dir, "tls.key", next.KeyPEM)
	dial()
	// Mid-rotation: the new certificate is there, its key not yet.
	third := e.clientCA.issueNow(t, "factos-worker", false)
	writeFile(t, e.dir, "tls.crt", third.CertPEM)
	dial()

	_, _, clients := e.gate.counts()
	if clients[e.client.Serial] == 0 || clients[next.Serial] == 0 || clients[third.Serial] != 0 {
		t.Errorf("calls by certificate serial %v; want the first (%s) and the rotated one (%s), never the half-written one", clients, e.client.Serial, next.Serial)
	}
	for _, want := range []string{"Temporal client certificate reloaded", "error reloading the Temporal client certificate; using the one loaded before"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs.String(), string(next.KeyPEM[30:60])) {
		t.Errorf("logs quote the key")
	}
}

// The whole worker, in-process, runs against the real Temporal dev server
// through a Temporal Cloud-like front door (mutual TLS, a CA of its own, a
// server name that is not its address, an API key): it gets ready, and a
// workflow started through the same front door runs its command through
// the worker's dispatch activity.
func TestWorkerOverTemporalTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newTemporalTLSEnv(t)
	dbURL := testdb.NewURL(t)
	if err := tickets.Migrate(ctx, testdb.Pool(t, dbURL)); err != nil {
		t.Fatal(err)
	}
	vars := e.vars()
	addr := freeAddr(t)
	vars["DATABASE_URL"], vars["HTTP_ADDR"], vars["TEMPORAL_TASK_QUEUE"] = dbURL, addr, testtemporal.UniqueID("tls")
	vars["LOG_LEVEL"], vars["SHUTDOWN_TIMEOUT"] = "debug", "5s"
	cfg, err := factosfx.LoadConfig(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	domain := ticketDomain()
	domain.Workflows = tickets.RegisterWorkflows
	var store *eventstore.Store
	startApp(t, cfg, domain, logs, fx.Populate(&store))

	testriver.WaitFor(t, time.Minute, "the worker to be ready over TLS", func() (bool, error) {
		code, body := httpGet(t, "http://"+addr+factosfx.PathReady)
		return code == http.StatusOK && strings.Contains(body, `"temporal":"ok"`), nil
	})
	concert := testtemporal.UniqueID("tls-concert")
	if _, err := eventstore.Dispatch(ctx, store, tickets.ScheduleConcertHandler(tickets.NewCodec()), tickets.ScheduleConcert{ConcertID: concert, Capacity: 1}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := dialWith(t, e.vars())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(runCtx, client.StartWorkflowOptions{ID: testtemporal.UniqueID("tls-buy"), TaskQueue: cfg.TemporalTaskQueue},
		tickets.BuyTicketWorkflow, tickets.BuyTicket{ConcertID: concert, BuyerID: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	var p tickets.Purchase
	if err := run.Get(runCtx, &p); err != nil || !p.Sold {
		t.Fatalf("purchase %+v, %v", p, err)
	}
	forwarded, refused, clients := e.gate.counts()
	if refused != 0 || forwarded == 0 || clients[e.client.Serial] == 0 {
		t.Errorf("front door: %d calls forwarded, %d refused, by certificate %v", forwarded, refused, clients)
	}
	if line := logs.String(); !strings.Contains(line, `"temporal_tls":true`) || !strings.Contains(line, `"temporal_api_key":true`) ||
		!strings.Contains(line, `"temporal_client_cert":"`+e.certPath+`"`) {
		t.Errorf("the start-up line does not describe the connection:\n%s", firstLine(line, "starting factos worker"))
	}
}

// startApp starts the worker's fx app with logs into logs. It returns the
// stop function, which the test's end calls too.
func startApp(t *testing.T, cfg *factosfx.Config, domain factosfx.Domain, logs *testlog.Buffer, extra ...fx.Option) (stop func()) {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app := fx.New(append([]fx.Option{
		factosfx.Options(cfg, domain),
		fx.Decorate(func(*slog.Logger) *slog.Logger { return logger }),
	}, extra...)...)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := app.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
			if t.Failed() {
				t.Logf("logs:\n%s", logs.String())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func firstLine(logs, containing string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, containing) {
			return l
		}
	}
	return fmt.Sprintf("(no line with %q)", containing)
}
