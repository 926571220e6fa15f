// Package kubeobj turns multi-document YAML into objects and creates them
// through the dynamic client, as `kubectl create -f` does.
package kubeobj

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Decode reads every non-empty document of data.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, fmt.Errorf("decode document %d: %w", len(out)+1, err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// Create creates obj as mapping says: in its namespace ("default" when it
// names none) when the resource is namespaced.
func Create(ctx context.Context, dyn dynamic.Interface, mapping *meta.RESTMapping, obj *unstructured.Unstructured, fieldManager string) error {
	var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri = dyn.Resource(mapping.Resource).Namespace(ns)
	}
	_, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: fieldManager})
	return err
}

// mappingWait bounds the wait for a just-created CRD's kind to be served.
const mappingWait = 30 * time.Second

// CreateAll creates every object of multi-document YAML, as `kubectl
// create -f` would; objects that exist already are left as they are. A
// kind whose CustomResourceDefinition was created a moment ago is waited
// for until the API server serves it.
func CreateAll(ctx context.Context, cfg *rest.Config, data []byte, fieldManager string) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	objs, err := Decode(data)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		var mapping *meta.RESTMapping
		deadline := time.Now().Add(mappingWait)
		for {
			groups, err := restmapper.GetAPIGroupResources(dc)
			if err == nil {
				mapping, err = restmapper.NewDiscoveryRESTMapper(groups).RESTMapping(gvk.GroupKind(), gvk.Version)
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s %s: %w", gvk, obj.GetName(), err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		if err := Create(ctx, dyn, mapping, obj, fieldManager); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", gvk.Kind, obj.GetName(), err)
		}
	}
	return nil
}
