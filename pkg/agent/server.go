package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"k8s.io/klog/v2"
)

// Handler serves the agent's API. It must sit behind a TLS listener that
// requires client certificates (ServerTLS); it refuses plain requests too.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{PathSet, PathGet, PathClear, PathCapacity} {
		mux.HandleFunc(p, a.serve)
	}
	return mux
}

func (a *Agent) serve(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		writeError(w, errorf(CodePermissionDenied, "the agent answers only clients with a certificate its CA signed"))
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, errorf(CodeInvalidArgument, "%s %s: the agent's API takes POST", r.Method, r.URL.Path))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		writeError(w, errorf(CodeInvalidArgument, "request to %s: %v (at most %d bytes)", r.URL.Path, err, MaxRequestBytes))
		return
	}
	req, err := DecodeRequest(r.URL.Path, body)
	client := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if err != nil {
		klog.InfoS("Refused agent request", "client", client, "path", r.URL.Path, "err", err)
		writeError(w, err)
		return
	}
	var out any
	switch r.URL.Path {
	case PathSet:
		out, err = a.Set(req)
	case PathGet:
		out, err = a.Get(req)
	case PathClear:
		err = a.Clear(req)
		out = struct{}{}
	case PathCapacity:
		out, err = a.Capacity(req)
	}
	if err != nil {
		klog.InfoS("Agent request failed", "client", client, "path", r.URL.Path, "share", req.Share, "subDir", req.SubDir, "volumeID", req.VolumeID, "err", err)
		writeError(w, err)
		return
	}
	klog.V(2).InfoS("Agent request done", "client", client, "path", r.URL.Path, "share", req.Share, "subDir", req.SubDir, "volumeID", req.VolumeID, "capacityBytes", req.CapacityBytes)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code.httpStatus())
	_ = json.NewEncoder(w).Encode(e)
}

// ServerTLS is the agent's TLS configuration: its own certificate, and
// only clients whose certificate clientCA signed (TLS 1.3).
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load the agent's certificate %s and key %s: %w", certFile, keyFile, err)
	}
	pool, err := loadPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// Serve answers on ln with TLS until ctx ends.
func (a *Agent) Serve(ctx context.Context, ln net.Listener, cfg *tls.Config) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, cfg)) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
