package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"podpath/internal/safefile"
)

// RESTConfig is kf.ToRESTConfig with the mistakes client-go reports
// badly, or not at all, caught first with a line saying what to do: a
// device or FIFO named as the kubeconfig (client-go would read /dev/zero
// until the machine runs out of memory), $KUBECONFIG naming only files
// that do not exist and a kubeconfig without a current context (both end
// in "cannot reach localhost:8080" otherwise).
func RESTConfig(kf *genericclioptions.ConfigFlags) (*rest.Config, error) {
	var files []string
	explicit := kf.KubeConfig != nil && *kf.KubeConfig != ""
	switch env := os.Getenv("KUBECONFIG"); {
	case explicit:
		files = []string{*kf.KubeConfig}
	case env != "":
		files = filepath.SplitList(env)
	default:
		if home, err := os.UserHomeDir(); err == nil {
			files = []string{filepath.Join(home, ".kube", "config")}
		}
	}
	found := 0
	for _, f := range files {
		if f == "" {
			continue
		}
		err := safefile.Check(f, safefile.MaxKubeconfigBytes)
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		found++
	}
	if found == 0 && os.Getenv("KUBECONFIG") != "" && !explicit {
		return nil, fmt.Errorf("kubeconfig: none of the files $KUBECONFIG names exists (%s): fix $KUBECONFIG or give --kubeconfig", os.Getenv("KUBECONFIG"))
	}
	// --server names the cluster without any context; so may --context.
	if found > 0 && (kf.Context == nil || *kf.Context == "") && (kf.APIServer == nil || *kf.APIServer == "") {
		raw, err := kf.ToRawKubeConfigLoader().RawConfig()
		if err == nil && raw.CurrentContext == "" {
			return nil, fmt.Errorf("kubeconfig has no current context: give --context, or set one with kubectl config use-context")
		}
	}
	cfg, err := kf.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w (check --kubeconfig or $KUBECONFIG; --inventory measures without API access)", err)
	}
	return cfg, nil
}

// Configured says whether kubectl's flags, $KUBECONFIG or ~/.kube/config
// name a cluster at all.
func Configured(kf *genericclioptions.ConfigFlags) bool {
	if kf.APIServer != nil && *kf.APIServer != "" {
		return true
	}
	raw, err := kf.ToRawKubeConfigLoader().RawConfig()
	return err == nil && len(raw.Contexts) > 0
}
