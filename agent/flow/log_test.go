package flow

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func observerLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(core), logs
}
