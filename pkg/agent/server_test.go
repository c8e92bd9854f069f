package agent

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/example/nfs-csi/pkg/agent/agenttest"
	"github.com/example/nfs-csi/pkg/nfs"
)

// serveBed runs the bed's agent on a loopback TLS listener and returns its
// address and the PKI whose CA it trusts.
func serveBed(t *testing.T, b *bed) (string, *agenttest.PKI) {
	t.Helper()
	pki, cert, key, ca, err := agenttest.AgentFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServerTLS(cert, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.agent.Serve(ctx, ln, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), pki
}

func client(t *testing.T, addr string, signer *agenttest.PKI, trusted []byte) *Client {
	t.Helper()
	pair, err := signer.Client("nfs-csi-controller")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(addr, "", pair.CertPEM, pair.KeyPEM, trusted)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAgentAnswersOnlyCertificatesOfItsCA(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 199})
	req := b.volume("a", nfs.Record{})
	req.CapacityBytes = 1 << 20
	addr, pki := serveBed(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	other, err := agenttest.NewPKI("another-ca")
	if err != nil {
		t.Fatal(err)
	}
	before := b.tree()
	_, err = client(t, addr, other, pki.CAPEM).Set(ctx, req)
	if !IsUnreachable(err) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Set with a certificate of another CA = %v, want a refused handshake naming %s", err, addr)
	}
	if after := b.tree(); after != before {
		t.Errorf("a refused client changed the root:\n%s\nto\n%s", before, after)
	}

	good := client(t, addr, pki, pki.CAPEM)
	st, err := good.Set(ctx, req)
	if err != nil || st.ProjectID != 100 || st.LimitBytes != 1<<20 {
		t.Fatalf("Set = %+v, %v; want project 100 with 1 MiB", st, err)
	}
	req.CapacityBytes = 0
	if got, err := good.Get(ctx, req); err != nil || got != st {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, st)
	}
	_, err = good.Get(ctx, Request{Share: "/export", SubDir: "../etc", VolumeID: "x"})
	if code(err) != CodeInvalidArgument || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Get of ../etc = %v, want InvalidArgument naming the agent", err)
	}
	if err := good.Clear(ctx, req); err != nil {
		t.Fatal(err)
	}
	if c, err := good.Capacity(ctx, "/export"); err != nil || c.TotalBytes <= 0 {
		t.Fatalf("Capacity = %+v, %v", c, err)
	}
}

func TestClientOfAStoppedAgentIsUnreachable(t *testing.T) {
	pki, err := agenttest.NewPKI("ca")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = client(t, addr, pki, pki.CAPEM).Set(context.Background(), Request{Share: "/x", SubDir: "a", VolumeID: "v", CapacityBytes: 1})
	if !IsUnreachable(err) {
		t.Fatalf("Set to a closed port = %v, want UnreachableError", err)
	}
}
