package factosfx_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// temporalGate stands in front of the real Temporal dev server the way
// Temporal Cloud's front door does, because the dev server cannot serve
// TLS itself (`temporal server start-dev` has no TLS settings, and TLS is
// static server configuration the CLI does not expose). It terminates TLS
// with its own server certificate, requires a client certificate signed by
// clientCA (mutual TLS), refuses every call without "authorization: Bearer
// <apiKey>" with Unauthenticated, as Temporal Cloud does, and forwards the
// rest, message by message, to the dev server in plain text. What it saw is
// recorded for the test to check.
type temporalGate struct {
	Addr string

	apiKey  string
	backend *grpc.ClientConn

	mu        sync.Mutex
	forwarded int
	refused   int
	clients   map[string]int // client certificate serial -> connections' calls
}

func startTemporalGate(t *testing.T, backend string, server tls.Certificate, clientCA *testCA, apiKey string) *temporalGate {
	t.Helper()
	conn, err := grpc.NewClient(backend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	g := &temporalGate{apiKey: apiKey, backend: conn, clients: map[string]int{}}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCA.cert)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{server},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    clientCAs,
			MinVersion:   tls.VersionTLS12,
		})),
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.UnknownServiceHandler(g.forward),
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.Addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return g
}

// forward checks the caller and relays one call, of any kind, to the
// backend.
func (g *temporalGate) forward(_ any, in grpc.ServerStream) error {
	ctx := in.Context()
	method, _ := grpc.MethodFromServerStream(in)
	md, _ := metadata.FromIncomingContext(ctx)
	if auth := md.Get("authorization"); len(auth) != 1 || auth[0] != "Bearer "+g.apiKey {
		g.mu.Lock()
		g.refused++
		g.mu.Unlock()
		return status.Error(codes.Unauthenticated, "Request unauthorized.")
	}
	g.mu.Lock()
	g.forwarded++
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			g.clients[ti.State.PeerCertificates[0].SerialNumber.String()]++
		}
	}
	g.mu.Unlock()

	out := md.Copy()
	delete(out, "authorization") // the dev server has no use for it
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, out))
	defer cancel()
	up, err := g.backend.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return err
	}
	// Caller to backend.
	sent := make(chan error, 1)
	go func() {
		for {
			var f rawFrame
			if err := in.RecvMsg(&f); err != nil {
				if errors.Is(err, io.EOF) {
					sent <- up.CloseSend()
				} else {
					sent <- err
				}
				return
			}
			if err := up.SendMsg(&f); err != nil {
				sent <- err
				return
			}
		}
	}()
	// Backend to caller, headers and trailers included.
	for first := true; ; first = false {
		var f rawFrame
		if err := up.RecvMsg(&f); err != nil {
			in.SetTrailer(up.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // a status from the backend, passed on as it is
		}
		if first {
			if h, err := up.Header(); err == nil {
				if err := in.SendHeader(h); err != nil {
					return err
				}
			}
		}
		if err := in.SendMsg(&f); err != nil {
			return err
		}
		select {
		case err := <-sent:
			if err != nil {
				return err
			}
		default:
		}
	}
}

// counts returns the calls forwarded, the calls refused and the calls per
// client certificate serial.
func (g *temporalGate) counts() (forwarded, refused int, clients map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	clients = map[string]int{}
	for k, v := range g.clients {
		clients[k] = v
	}
	return g.forwarded, g.refused, clients
}

// rawFrame is one gRPC message, left encoded.
type rawFrame struct{ b []byte }

// rawCodec passes messages through without decoding them.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(*rawFrame).b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawFrame).b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }
