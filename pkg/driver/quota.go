package driver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/nfs"
)

// The keys of the quota agent's client certificate in the CSI secrets
// (csi.storage.k8s.io/provisioner-secret-* and controller-expand-secret-*):
// a kubernetes.io/tls Secret plus the CA that signed the agent's
// certificate, as cert-manager writes them.
const (
	SecretAgentCert = "tls.crt"
	SecretAgentKey  = "tls.key"
	SecretAgentCA   = "ca.crt"
)

// quotaAgents caches one client per agent and certificate, so that the
// controller's calls reuse their TLS connections.
type quotaAgents struct {
	mu      sync.Mutex
	clients map[[32]byte]*agent.Client
}

// client returns the client of the agent at addr with the certificate in
// secrets. rpc and the volume are for the message when secrets lack one.
func (q *quotaAgents) client(rpc, volumeID, addr string, secrets map[string]string) (*agent.Client, error) {
	cert, key, ca := secrets[SecretAgentCert], secrets[SecretAgentKey], secrets[SecretAgentCA]
	if cert == "" || key == "" || ca == "" {
		return nil, status.Errorf(codes.InvalidArgument,
			"%s %s: the capacity is enforced by quota agent %s, and the call's secrets lack %s, %s or %s: set csi.storage.k8s.io/provisioner-secret-name/-namespace and controller-expand-secret-name/-namespace in the StorageClass to a Secret with the controller's client certificate (docs/capacity.md)",
			rpc, volumeID, addr, SecretAgentCert, SecretAgentKey, SecretAgentCA)
	}
	k := sha256.Sum256([]byte(addr + "\x00" + cert + "\x00" + key + "\x00" + ca))
	q.mu.Lock()
	defer q.mu.Unlock()
	if c := q.clients[k]; c != nil {
		return c, nil
	}
	c, err := agent.NewClient(addr, "", []byte(cert), []byte(key), []byte(ca))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s %s: the secret's certificate for quota agent %s: %v", rpc, volumeID, addr, err)
	}
	if q.clients == nil {
		q.clients = map[[32]byte]*agent.Client{}
	}
	q.clients[k] = c
	return c, nil
}

// agentStatus turns an agent call's error into the code CSI expects. An
// agent that does not answer is Unavailable, which the sidecars retry: a
// volume is never handed out without the limit its class asks for.
func agentStatus(rpc, volumeID string, vol nfs.Volume, addr string, err error) error {
	if err == nil {
		return nil
	}
	if agent.IsUnreachable(err) {
		return status.Errorf(codes.Unavailable, "%s %s (%s): %v; the capacity of this class is enforced, so the call waits for the agent (is nfs-csi-agent running on the NFS server, and does the controller reach %s?) and is retried",
			rpc, volumeID, vol.Source(), err, addr)
	}
	var e *agent.Error
	if !errors.As(err, &e) {
		return status.Errorf(codes.Internal, "%s %s (%s): quota agent %s: %v", rpc, volumeID, vol.Source(), addr, err)
	}
	c := codes.Internal
	switch e.Code {
	case agent.CodeInvalidArgument:
		c = codes.InvalidArgument
	case agent.CodeNotFound:
		c = codes.NotFound
	case agent.CodePermissionDenied, agent.CodeFailedPrecondition:
		c = codes.FailedPrecondition
	case agent.CodeResourceExhausted:
		c = codes.ResourceExhausted
	}
	return status.Errorf(c, "%s %s (%s): %v", rpc, volumeID, vol.Source(), e.Message)
}

func quotaRequest(vol nfs.Volume, capacity int64) agent.Request {
	return agent.Request{Share: vol.Share, SubDir: vol.SubDir, VolumeID: vol.ID(), CapacityBytes: capacity}
}

// enforce sets the volume's limit at its agent.
func (d *Driver) enforce(ctx context.Context, rpc string, vol nfs.Volume, rec nfs.Record, secrets map[string]string) error {
	c, err := d.quotas.client(rpc, vol.ID(), rec.QuotaAgent, secrets)
	if err != nil {
		return err
	}
	_, err = c.Set(ctx, quotaRequest(vol, rec.CapacityBytes))
	return agentStatus(rpc, vol.ID(), vol, rec.QuotaAgent, err)
}

// unenforce clears the volume's limit and project ID at its agent, before
// the directory is removed, retained or archived: a directory reused later
// carries no limit, and the ID is released.
func (d *Driver) unenforce(ctx context.Context, vol nfs.Volume, rec nfs.Record, secrets map[string]string) error {
	c, err := d.quotas.client("DeleteVolume", vol.ID(), rec.QuotaAgent, secrets)
	if err != nil {
		return err
	}
	return agentStatus("DeleteVolume", vol.ID(), vol, rec.QuotaAgent, c.Clear(ctx, quotaRequest(vol, 0)))
}

// describeCapacity is the record's capacity for logs.
func describeCapacity(rec nfs.Record) string {
	if rec.QuotaAgent == "" {
		return fmt.Sprintf("%d bytes, recorded", rec.CapacityBytes)
	}
	return fmt.Sprintf("%d bytes, enforced by %s", rec.CapacityBytes, rec.QuotaAgent)
}

// checkAgent asks the agent about the share before anything is created, so
// that a class whose agent is down or refuses the share makes no directory.
func (d *Driver) checkAgent(ctx context.Context, vol nfs.Volume, rec nfs.Record, secrets map[string]string) error {
	if rec.CapacityBytes <= 0 {
		return status.Errorf(codes.InvalidArgument, "CreateVolume %s: the class enforces capacity (%s: %s), and the request asks for none; set the PVC's resources.requests.storage", rec.Name, ParamCapacity, CapacityEnforced)
	}
	c, err := d.quotas.client("CreateVolume", vol.ID(), rec.QuotaAgent, secrets)
	if err != nil {
		return err
	}
	_, err = c.Capacity(ctx, vol.Share)
	return agentStatus("CreateVolume", vol.ID(), vol, rec.QuotaAgent, err)
}

// unenforceBeforeDispose clears the quota of a live, enforced volume of
// this ID and cluster; Dispose decides everything else.
func (d *Driver) unenforceBeforeDispose(ctx context.Context, sh *nfs.Share, vol nfs.Volume, secrets map[string]string) error {
	if vol.SubDir == "" {
		return nil
	}
	store, err := sh.Records()
	if err != nil {
		return err
	}
	rec, ok, err := store.Get(vol.SubDir)
	if err != nil || !ok || rec.Tombstone || rec.QuotaAgent == "" || !rec.IsVolume(vol.ID()) || rec.ForeignTo(d.cfg.ClusterID) {
		return err
	}
	return d.unenforce(ctx, vol, rec, secrets)
}
