package datapath

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SeedConfigMap is the ConfigMap, in the daemon's namespace, that holds the cluster's
// Maglev hash seed under SeedKey (decimal uint32). The first daemon that finds it missing
// creates it with a random seed; every daemon then uses that seed, so all nodes hash a
// flow to the same Maglev slot. Deleting it makes the next starting daemons pick a new
// seed (existing flows keep their backends through conntrack).
const (
	SeedConfigMap = "bgplb-datapath"
	SeedKey       = "hashSeed"
)

// ClusterHashSeed returns the cluster's hash seed from the SeedConfigMap in namespace,
// creating the ConfigMap with a random seed when it does not exist yet. Two daemons
// racing to create it agree: the loser reads the winner's.
func ClusterHashSeed(ctx context.Context, kube kubernetes.Interface, namespace string) (uint32, error) {
	cms := kube.CoreV1().ConfigMaps(namespace)
	for attempt := 0; attempt < 3; attempt++ {
		cm, err := cms.Get(ctx, SeedConfigMap, metav1.GetOptions{})
		if err == nil {
			v, perr := strconv.ParseUint(cm.Data[SeedKey], 10, 32)
			if perr != nil {
				return 0, fmt.Errorf("parse %s in configmap %s/%s: %w", SeedKey, namespace, SeedConfigMap, perr)
			}
			return uint32(v), nil
		}
		if !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("get configmap %s/%s: %w", namespace, SeedConfigMap, err)
		}
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("generate hash seed: %w", err)
		}
		seed := binary.LittleEndian.Uint32(b[:])
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: SeedConfigMap, Namespace: namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "bgplb"}},
			Data: map[string]string{SeedKey: strconv.FormatUint(uint64(seed), 10)},
		}, metav1.CreateOptions{})
		if err == nil {
			return seed, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("create configmap %s/%s: %w", namespace, SeedConfigMap, err)
		}
		// Another daemon created it first: read theirs.
	}
	return 0, fmt.Errorf("get or create configmap %s/%s: gave up after 3 attempts", namespace, SeedConfigMap)
}
