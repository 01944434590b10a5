package daemon

import "github.com/mailjail/mailjail/internal/control"

// Deprecated names kept while the CLI moves to package control's.
const (
	ExitOK          = control.ExitOK
	ExitNotFound    = control.ExitNotFound
	ExitUsage       = control.ExitUsage
	ExitUnreachable = control.ExitUnreachable
)

// BanView is control.BanView.
var BanView = control.BanView
