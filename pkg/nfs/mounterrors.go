package nfs

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// MountFailure classifies why a mount failed, so the driver can pick a gRPC
// code and the admin gets a hint instead of mount.nfs's bare words.
type MountFailure int

// The failure classes, from the most to the least specific.
const (
	MountFailedOther MountFailure = iota
	MountAccessDenied
	MountNoSuchExport
	MountServerUnreachable
	MountTimedOut
	MountVersionUnsupported
	MountHelperMissing
	MountStatdMissing
)

// MountError is a failed mount with mount(8)'s output.
type MountError struct {
	Source, Target, Output string
	Err                    error
}

func (e *MountError) Error() string {
	if e.Output != "" {
		return fmt.Sprintf("mount %s at %s: %v: %s", e.Source, e.Target, e.Err, e.Output)
	}
	return fmt.Sprintf("mount %s at %s: %v", e.Source, e.Target, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }

// Failure classifies the error.
func (e *MountError) Failure() MountFailure {
	out := strings.ToLower(e.Output)
	switch {
	case errors.Is(e.Err, context.DeadlineExceeded), errors.Is(e.Err, context.Canceled):
		return MountTimedOut
	case errors.Is(e.Err, exec.ErrNotFound),
		strings.Contains(out, "bad option") && strings.Contains(out, "helper program"),
		strings.Contains(out, "wrong fs type") && strings.Contains(out, "helper program"):
		return MountHelperMissing
	case strings.Contains(out, "access denied"), strings.Contains(out, "permission denied"), strings.Contains(out, "operation not permitted"):
		return MountAccessDenied
	case strings.Contains(out, "no such file or directory"), strings.Contains(out, "not exported"):
		return MountNoSuchExport
	case strings.Contains(out, "statd"):
		return MountStatdMissing
	case strings.Contains(out, "protocol not supported"), strings.Contains(out, "requested nfs version"), strings.Contains(out, "program not registered"):
		return MountVersionUnsupported
	case strings.Contains(out, "connection refused"), strings.Contains(out, "timed out"), strings.Contains(out, "no route to host"),
		strings.Contains(out, "network is unreachable"), strings.Contains(out, "name or service not known"), strings.Contains(out, "failed to resolve"):
		return MountServerUnreachable
	}
	return MountFailedOther
}

// Explain returns a message an admin can act on: what failed, for which
// server, export and node, and what to check.
func (e *MountError) Explain(server, export, node string) string {
	var hint string
	switch e.Failure() {
	case MountAccessDenied:
		hint = fmt.Sprintf("the NFS server %s refused export %s to this node (%s). Check /etc/exports on the server: the export must list this node's IP address or subnet, "+
			"and the path must match the exported path exactly (with NFSv4 and fsid=0 the path is relative to the pseudo-root); then run exportfs -ra. "+
			"A squashed root (root_squash) or a missing 'insecure' option for unprivileged ports can also cause this", server, export, node)
	case MountNoSuchExport:
		hint = fmt.Sprintf("the server %s has no directory %s. If this is a dynamically provisioned volume its directory was removed on the server; "+
			"if it is a static PV, check the share and subDir, and remember that with NFSv4 and fsid=0 the share is relative to the pseudo-root (often \"/\")", server, export)
	case MountServerUnreachable:
		hint = fmt.Sprintf("the NFS server %s did not answer from this node (%s). Check that it runs (rpcinfo -p %s), that nfsd is started, and that no firewall blocks TCP 2049 (and 111 for NFSv3)", server, node, server)
	case MountTimedOut:
		hint = fmt.Sprintf("the mount did not finish in time; the NFS server %s is probably down or unreachable from this node (%s). The mount helper was killed", server, node)
	case MountVersionUnsupported:
		hint = fmt.Sprintf("the server %s does not offer the requested NFS version or transport; check the vers= and proto= mount options against the server's configuration. "+
			"If the same mount works from another machine, this node's mount.nfs cannot name its transports: with NFSv3 it fails this way when /etc/protocols "+
			"or /etc/netconfig is missing (Debian's netbase and libtirpc-common packages; the project's image has both)", server)
	case MountHelperMissing:
		hint = "the NFS mount helper mount.nfs is missing on this node; install nfs-common (Debian/Ubuntu) or nfs-utils (RHEL/Fedora) in the driver's image or on the host"
	case MountStatdMissing:
		hint = "NFSv3 locking needs rpc.statd on this node; start rpc.statd or add the 'nolock' mount option if the applications do not need locks across nodes"
	default:
		hint = "see the mount output above"
	}
	return fmt.Sprintf("%v. Hint: %s", e, hint)
}
