package driver

import (
	"context"
	"errors"
	"time"
)

const (
	DefaultDriverName       = "nfs.csi.example.io"
	ModeBoth                = "both"
	DefaultShareIdleTimeout = 5 * time.Minute
	DefaultOperationTimeout = 30 * time.Second
)

type Config struct {
	Endpoint, NodeID, DriverName, Mode, WorkDir string
	ShareIdleTimeout, OperationTimeout          time.Duration
}

func Run(ctx context.Context, cfg Config) error { return errors.New("not yet") }
