package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/example/nfs-csi/pkg/agent"
)

// rootFlags collects repeated --root flags.
type rootFlags []agent.Root

func (r *rootFlags) String() string {
	var s []string
	for _, x := range *r {
		s = append(s, x.Share+"="+x.Path)
	}
	return strings.Join(s, ",")
}

func (r *rootFlags) Set(v string) error {
	root, err := agent.ParseRoot(v)
	if err != nil {
		return err
	}
	*r = append(*r, root)
	return nil
}

// runAgent is "nfs-csi agent": the server-side project-quota service.
func runAgent(args []string) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	klog.InitFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nfs-csi agent --root PATH|SHARE=PATH... --tls-cert F --tls-key F --client-ca F [--listen ADDR] [--project-ids MIN-MAX]\n\n"+
			"Runs on the NFS server and sets XFS or ext4 project quotas on the volume directories of the\n"+
			"driver below the given export roots, for controllers whose client certificate --client-ca signed.\n\n")
		fs.PrintDefaults()
	}
	var roots rootFlags
	fs.Var(&roots, "root", "an export root the agent serves, as PATH or SHARE=PATH (SHARE as the volume IDs name it, e.g. / for an NFSv4 pseudo-root); repeatable")
	listen := fs.String("listen", ":9820", "host:port to serve HTTPS on")
	ids := fs.String("project-ids", "3000000-3999999", "range of project IDs the agent assigns; IDs outside it (an admin's /etc/projects) are never touched")
	cert := fs.String("tls-cert", "", "the agent's server certificate (PEM)")
	key := fs.String("tls-key", "", "the agent's server key (PEM)")
	clientCA := fs.String("client-ca", "", "CA (PEM) whose signed client certificates the agent accepts")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	idRange, err := agent.ParseIDRange(*ids)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfs-csi agent: %v\n", err)
		return 2
	}
	if *cert == "" || *key == "" || *clientCA == "" {
		fmt.Fprintln(os.Stderr, "nfs-csi agent: --tls-cert, --tls-key and --client-ca are required: the agent answers only clients with a certificate")
		return 2
	}
	a, err := agent.New(roots, idRange, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfs-csi agent: %v\n", err)
		return 2
	}
	cfg, err := agent.ServerTLS(*cert, *key, *clientCA)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfs-csi agent: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfs-csi agent: %v\n", err)
		return 1
	}
	klog.InfoS("Quota agent serving", "address", ln.Addr().String(), "roots", roots.String(), "projectIDs", idRange.String())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.Serve(ctx, ln, cfg); err != nil {
		klog.ErrorS(err, "Quota agent stopped")
		klog.Flush()
		return 1
	}
	klog.Flush()
	return 0
}
