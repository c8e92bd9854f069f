package agent

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/example/nfs-csi/pkg/nfs"
)

// Quota is one project's hard block limit and usage; zero limit is none.
type Quota struct {
	LimitBytes int64
	UsedBytes  int64
	UsedInodes int64
}

// Quotas is the kernel interface the agent needs; tests use a fake.
type Quotas interface {
	// Project returns the project ID and inherit flag of the open directory.
	Project(fd int) (id uint32, inherit bool, err error)
	// SetProject gives the open directory a project ID and the inherit flag.
	SetProject(fd int, id uint32, inherit bool) error
	// Get returns project id's quota on the file system of fd.
	Get(fd int, id uint32) (Quota, error)
	// SetLimit sets project id's hard block limit on the file system of fd;
	// zero removes it.
	SetLimit(fd int, id uint32, bytes int64) error
}

// Root is one export the agent serves: the share path as the volume IDs
// name it, and the directory on this server.
type Root struct {
	Share string
	Path  string
}

// ParseRoot accepts "PATH" or "SHARE=PATH" (an NFSv4 pseudo-root such as
// "/=/srv/export", or an export reached by another name).
func ParseRoot(s string) (Root, error) {
	share, dir, ok := strings.Cut(s, "=")
	if !ok {
		dir = share
	}
	for _, p := range []string{share, dir} {
		if err := nfs.ValidateShare(p); err != nil {
			return Root{}, fmt.Errorf("root %q: %v", s, err)
		}
	}
	if dir == "/" {
		return Root{}, fmt.Errorf("root %q: the server's / cannot be a root", s)
	}
	return Root{Share: share, Path: dir}, nil
}

// IDRange is the inclusive range of project IDs the agent assigns.
type IDRange struct{ Min, Max uint32 }

// ParseIDRange accepts "MIN-MAX", 1 <= MIN <= MAX < 2^32-1.
func ParseIDRange(s string) (IDRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 32)
	b, err2 := strconv.ParseUint(hi, 10, 32)
	if !ok || err1 != nil || err2 != nil || a == 0 || a > b || b == 1<<32-1 {
		return IDRange{}, fmt.Errorf("project ID range %q must be MIN-MAX with 1 <= MIN <= MAX < 4294967295", s)
	}
	return IDRange{Min: uint32(a), Max: uint32(b)}, nil
}

func (r IDRange) contains(id uint32) bool { return id >= r.Min && id <= r.Max }

func (r IDRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// ProjectDir holds the agent's project ID assignments under each root:
// "id-N" is a symlink to the subDir that has project ID N. The assignment
// is written (exclusively) before the directory gets the ID, and removed
// after the directory lost it, so a crash in between leaves an entry that
// the retry finds and reuses. The directory's own project ID, on the file
// system, is the truth; the entry proves the agent gave it.
const ProjectDir = nfs.MetadataDirName + "/projects"

const projectEntryPrefix = "id-"

// Agent sets project quotas below its roots.
type Agent struct {
	roots  []Root
	ids    IDRange
	quotas Quotas

	mu      sync.Mutex
	devices map[uint64]*sync.Mutex // one assignment at a time per file system
}

// New returns an agent of roots assigning IDs from ids; quotas nil is the kernel's.
func New(roots []Root, ids IDRange, quotas Quotas) (*Agent, error) {
	if len(roots) == 0 {
		return nil, errors.New("the agent needs at least one --root")
	}
	if quotas == nil {
		quotas = newKernelQuota()
	}
	seen := map[string]bool{}
	for _, r := range roots {
		if seen[r.Share] {
			return nil, fmt.Errorf("share %s is given as a root twice", r.Share)
		}
		seen[r.Share] = true
	}
	return &Agent{roots: roots, ids: ids, quotas: quotas, devices: map[uint64]*sync.Mutex{}}, nil
}

func (a *Agent) root(share string) (Root, error) {
	for _, r := range a.roots {
		if r.Share == share {
			return r, nil
		}
	}
	names := make([]string, len(a.roots))
	for i, r := range a.roots {
		names[i] = r.Share
	}
	return Root{}, errorf(CodePermissionDenied, "share %s is not one of this agent's roots (%s); add it with --root on the NFS server", share, strings.Join(names, ", "))
}

// volumeDir is a request's directory, checked and open, with its root.
type volumeDir struct {
	root   Root
	rootFd int
	dirFd  int // -1 when the directory is gone (clear only)
	req    Request
}

func (v *volumeDir) close() {
	if v.dirFd >= 0 {
		unix.Close(v.dirFd)
	}
	unix.Close(v.rootFd)
}

func (v *volumeDir) where() string {
	return fmt.Sprintf("volume %s (%s)", v.req.VolumeID, path.Join(v.root.Path, v.req.SubDir))
}

// open checks a decoded request against the roots and the record and opens
// its directory without following symlinks. It changes nothing.
func (a *Agent) open(req Request, allowMissing bool) (*volumeDir, error) {
	root, err := a.root(req.Share)
	if err != nil {
		return nil, err
	}
	full := path.Join(root.Path, req.SubDir)
	rootFd, err := unix.Open(root.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errorf(CodeInternal, "open root %s of share %s: %v", root.Path, root.Share, err)
	}
	v := &volumeDir{root: root, rootFd: rootFd, dirFd: -1, req: req}
	if err := a.checkRecord(v); err != nil {
		v.close()
		return nil, err
	}
	fd, err := nfs.OpenBeneath(rootFd, req.SubDir)
	switch {
	case errors.Is(err, nfs.ErrSymlink):
		v.close()
		return nil, errorf(CodePermissionDenied, "%s: a component of subDir %s %v", v.where(), req.SubDir, err)
	case errors.Is(err, unix.ENOENT) && allowMissing:
	case errors.Is(err, unix.ENOENT):
		v.close()
		return nil, errorf(CodeNotFound, "%s: directory %s does not exist", v.where(), full)
	case err != nil:
		v.close()
		return nil, errorf(CodeInternal, "%s: open %s: %v", v.where(), full, err)
	default:
		v.dirFd = fd
	}
	return v, nil
}

// checkRecord requires a live creation record of the request's volume.
func (a *Agent) checkRecord(v *volumeDir) error {
	recFd, err := nfs.OpenBeneath(v.rootFd, nfs.RecordDir)
	if errors.Is(err, unix.ENOENT) {
		return errorf(CodeFailedPrecondition, "%s: the share has no creation records (%s); the agent acts only on directories the driver created", v.where(), path.Join(v.root.Path, nfs.RecordDir))
	}
	if err != nil {
		return errorf(CodeInternal, "%s: open records %s: %v", v.where(), path.Join(v.root.Path, nfs.RecordDir), err)
	}
	defer unix.Close(recFd)
	rec, ok, err := nfs.ReadRecord(recFd, v.req.SubDir)
	switch {
	case err != nil:
		return errorf(CodeFailedPrecondition, "%s: %v", v.where(), err)
	case !ok:
		return errorf(CodeFailedPrecondition, "%s: directory has no creation record of the driver; the agent acts only on directories the driver created", v.where())
	case rec.Tombstone:
		return errorf(CodeFailedPrecondition, "%s: the directory's record is a tombstone of a deleted volume", v.where())
	case !rec.IsVolume(v.req.VolumeID):
		return errorf(CodeFailedPrecondition, "%s: the directory's record is of volume %s, not of this one", v.where(), rec.VolumeID)
	}
	return nil
}

func (a *Agent) deviceLock(fd int) (*sync.Mutex, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.devices[st.Dev]
	if m == nil {
		m = &sync.Mutex{}
		a.devices[st.Dev] = m
	}
	return m, nil
}

// assignments reads the ID entries of a root: ID -> subDir.
func assignments(rootFd int) (map[uint32]string, error) {
	fd, err := nfs.OpenBeneath(rootFd, ProjectDir)
	if errors.Is(err, unix.ENOENT) {
		return map[uint32]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	names, err := readDirNames(fd)
	if err != nil {
		return nil, err
	}
	out := map[uint32]string{}
	buf := make([]byte, 4096)
	for _, n := range names {
		s, ok := strings.CutPrefix(n, projectEntryPrefix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			continue
		}
		k, err := unix.Readlinkat(fd, n, buf)
		if err != nil {
			continue
		}
		out[uint32(id)] = string(buf[:k])
	}
	return out, nil
}

func readDirNames(fd int) ([]string, error) {
	d, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := newDirFile(d)
	defer f.Close()
	return f.Readdirnames(-1)
}

func entryName(id uint32) string { return projectEntryPrefix + strconv.FormatUint(uint64(id), 10) }

// project returns the directory's project ID, assigning one when it has
// none. It refuses a directory whose ID the agent did not give it.
func (a *Agent) project(v *volumeDir, assign bool) (uint32, bool, error) {
	cur, _, err := a.quotas.Project(v.dirFd)
	if err != nil {
		return 0, false, errorf(CodeFailedPrecondition, "%s: %v", v.where(), err)
	}
	given, err := assignments(v.rootFd)
	if err != nil {
		return 0, false, errorf(CodeInternal, "%s: read %s: %v", v.where(), path.Join(v.root.Path, ProjectDir), err)
	}
	if cur != 0 {
		if !a.ids.contains(cur) {
			return 0, false, errorf(CodeFailedPrecondition, "%s: the directory has project ID %d, outside this agent's range %s: it is not the agent's to change", v.where(), cur, a.ids)
		}
		if given[cur] != v.req.SubDir {
			return 0, false, errorf(CodeFailedPrecondition, "%s: the directory has project ID %d, which this agent did not assign to it (%s has no entry for it)", v.where(), cur, path.Join(v.root.Path, ProjectDir))
		}
		return cur, true, nil
	}
	// An entry for this subDir without the ID on the directory: an earlier
	// call stopped between the two steps; finish it with the same ID.
	for id, sub := range given {
		if sub == v.req.SubDir && a.ids.contains(id) {
			if assign {
				if err := a.quotas.SetProject(v.dirFd, id, true); err != nil {
					return 0, false, errorf(CodeInternal, "%s: %v", v.where(), err)
				}
			}
			return id, true, nil
		}
	}
	if !assign {
		return 0, false, nil
	}
	id, err := a.free(v, given)
	if err != nil {
		return 0, false, err
	}
	entries, _, err := nfs.MkdirAllBeneath(v.rootFd, ProjectDir, 0o700)
	if err != nil {
		return 0, false, errorf(CodeInternal, "%s: create %s: %v", v.where(), path.Join(v.root.Path, ProjectDir), err)
	}
	defer unix.Close(entries)
	if err := unix.Symlinkat(v.req.SubDir, entries, entryName(id)); err != nil {
		return 0, false, errorf(CodeInternal, "%s: claim project ID %d (%s/%s): %v", v.where(), id, path.Join(v.root.Path, ProjectDir), entryName(id), err)
	}
	if err := a.quotas.SetProject(v.dirFd, id, true); err != nil {
		_ = unix.Unlinkat(entries, entryName(id), 0)
		return 0, false, errorf(CodeFailedPrecondition, "%s: %v", v.where(), err)
	}
	return id, true, nil
}

// free finds the lowest ID of the range that no entry holds and that has
// no usage and no limit on the file system: an ID still charged with files
// (of a retained directory, or an admin's) is never handed out again.
func (a *Agent) free(v *volumeDir, given map[uint32]string) (uint32, error) {
	for id := a.ids.Min; ; id++ {
		if _, taken := given[id]; !taken {
			q, err := a.quotas.Get(v.rootFd, id)
			if err != nil {
				return 0, errorf(CodeFailedPrecondition, "%s: %v", v.where(), err)
			}
			if q == (Quota{}) {
				return id, nil
			}
		}
		if id == a.ids.Max {
			return 0, errorf(CodeResourceExhausted, "%s: every project ID of the agent's range %s is in use on this file system; widen --project-ids", v.where(), a.ids)
		}
	}
}

// Set gives the request's directory a project ID (once) and sets its hard
// limit to req.CapacityBytes. Repeating it is harmless.
func (a *Agent) Set(req Request) (Status, error) {
	v, err := a.open(req, false)
	if err != nil {
		return Status{}, err
	}
	defer v.close()
	lock, err := a.deviceLock(v.dirFd)
	if err != nil {
		return Status{}, errorf(CodeInternal, "%s: %v", v.where(), err)
	}
	lock.Lock()
	defer lock.Unlock()
	id, _, err := a.project(v, true)
	if err != nil {
		return Status{}, err
	}
	if err := a.quotas.SetLimit(v.dirFd, id, req.CapacityBytes); err != nil {
		return Status{}, errorf(CodeInternal, "%s: %v", v.where(), err)
	}
	return a.status(v, id)
}

// Get reports the request's directory's quota; ProjectID 0 when it has none.
func (a *Agent) Get(req Request) (Status, error) {
	v, err := a.open(req, false)
	if err != nil {
		return Status{}, err
	}
	defer v.close()
	id, ok, err := a.project(v, false)
	if err != nil || !ok {
		return Status{}, err
	}
	return a.status(v, id)
}

func (a *Agent) status(v *volumeDir, id uint32) (Status, error) {
	q, err := a.quotas.Get(v.dirFd, id)
	if err != nil {
		return Status{}, errorf(CodeInternal, "%s: %v", v.where(), err)
	}
	return Status{ProjectID: id, LimitBytes: q.LimitBytes, UsedBytes: q.UsedBytes, UsedInodes: q.UsedInodes}, nil
}

// Clear removes the limit and the project ID of the request's directory
// and releases the ID. A directory already gone is fine: its entry is
// released. The files keep their ID until they go, and an ID with usage is
// not handed out again, so a retained directory never counts against a
// new volume.
func (a *Agent) Clear(req Request) error {
	v, err := a.open(req, true)
	if err != nil {
		return err
	}
	defer v.close()
	lock, err := a.deviceLock(v.rootFd)
	if err != nil {
		return errorf(CodeInternal, "%s: %v", v.where(), err)
	}
	lock.Lock()
	defer lock.Unlock()
	given, err := assignments(v.rootFd)
	if err != nil {
		return errorf(CodeInternal, "%s: read %s: %v", v.where(), path.Join(v.root.Path, ProjectDir), err)
	}
	var ids []uint32
	if v.dirFd >= 0 {
		cur, _, err := a.quotas.Project(v.dirFd)
		if err != nil {
			return errorf(CodeFailedPrecondition, "%s: %v", v.where(), err)
		}
		if cur != 0 && (!a.ids.contains(cur) || given[cur] != req.SubDir) {
			return errorf(CodeFailedPrecondition, "%s: the directory has project ID %d, which this agent did not assign (range %s): it is not the agent's to clear", v.where(), cur, a.ids)
		}
	}
	for id, sub := range given {
		if sub == req.SubDir && a.ids.contains(id) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := a.quotas.SetLimit(v.rootFd, id, 0); err != nil {
			return errorf(CodeInternal, "%s: %v", v.where(), err)
		}
		if v.dirFd >= 0 {
			if err := a.quotas.SetProject(v.dirFd, 0, false); err != nil {
				return errorf(CodeInternal, "%s: %v", v.where(), err)
			}
		}
		entries, err := nfs.OpenBeneath(v.rootFd, ProjectDir)
		if err != nil {
			return errorf(CodeInternal, "%s: open %s: %v", v.where(), path.Join(v.root.Path, ProjectDir), err)
		}
		err = unix.Unlinkat(entries, entryName(id), 0)
		unix.Close(entries)
		if err != nil && err != unix.ENOENT {
			return errorf(CodeInternal, "%s: release project ID %d: %v", v.where(), id, err)
		}
	}
	return nil
}

// Capacity reports a root's file system and the limits set below it.
func (a *Agent) Capacity(req Request) (Capacity, error) {
	root, err := a.root(req.Share)
	if err != nil {
		return Capacity{}, err
	}
	fd, err := unix.Open(root.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Capacity{}, errorf(CodeInternal, "open root %s of share %s: %v", root.Path, root.Share, err)
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return Capacity{}, errorf(CodeInternal, "statfs root %s of share %s: %v", root.Path, root.Share, err)
	}
	bs := int64(st.Frsize)
	if bs == 0 {
		bs = int64(st.Bsize)
	}
	c := Capacity{TotalBytes: int64(st.Blocks) * bs, AvailableBytes: int64(st.Bavail) * bs}
	given, err := assignments(fd)
	if err != nil {
		return Capacity{}, errorf(CodeInternal, "read %s: %v", path.Join(root.Path, ProjectDir), err)
	}
	for id := range given {
		if q, err := a.quotas.Get(fd, id); err == nil {
			c.PromisedBytes += q.LimitBytes
		}
	}
	return c, nil
}
