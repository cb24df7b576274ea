package lab

import (
	"context"
	"fmt"
	"io"
	"io/fs"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/bgplb/bgplb/manifests"
)

// InstallCRDs applies the bgplb CRDs embedded from manifests/base/crds and waits until
// the API server serves the bgplb.io group. Up does it before starting bgplbd.
func (l *Lab) InstallCRDs(ctx context.Context) error {
	cfg, err := l.RESTConfig()
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	files, err := fs.Glob(manifests.CRDs, "base/crds/*.yaml")
	if err != nil {
		return fmt.Errorf("list embedded CRDs: %w", err)
	}
	for _, f := range files {
		data, err := manifests.CRDs.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read embedded %s: %w", f, err)
		}
		if err := applyYAML(ctx, dyn, mapper, f, data, io.Discard, nil); err != nil {
			return err
		}
	}
	return waitCRDsEstablished(ctx, mapper, dc)
}
