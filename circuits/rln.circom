// RLN v2 (Rate-Limiting Nullifier, version 2) for The Waku Network: a member of a Poseidon
// Merkle tree of rate commitments proves, for one signal x in one epoch, that it knows the
// secret behind a leaf, that its message id is below its rate limit, and publishes one share
// (x, y) of a line whose slope a1 is fixed per (secret, epoch, message id). Two shares with the
// same nullifier reveal the secret.
//
// Written from the RLN-V2 specification. Tree depth 20, message ids on 16 bits. Public signals
// in wire order: y, root, nullifier (outputs), then x, externalNullifier (public inputs).
//
// Compiled with --O2 this gives exactly the network's R1CS (see README.md). circom numbers the
// wires and orders the constraints of a component's children by the children's names, and an
// anonymous component is named after its template, line and column. So the template names
// (MerkleRoot < Poseidon < WithinRateLimit) and the lines of the Poseidon calls are part of
// the circuit's identity: tests/circuit_r1cs.rs fails if an edit changes the numbering.
pragma circom 2.1.0;

include "circomlib/circuits/poseidon.circom";
include "circomlib/circuits/mux1.circom";
include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";

// The root of a binary Poseidon Merkle tree from a leaf and its authentication path, leaf
// level first. Bit i of the path is the side of the running hash at level i: 0 = left.
template MerkleRoot(depth) {
    signal input leaf;
    signal input bits[depth];
    signal input siblings[depth];

    signal output root;

    // ordered[i] = [left child, right child] at level i.
    signal ordered[depth][2];
    signal node[depth + 1];

    node[0] <== leaf;
    for (var i = 0; i < depth; i++) {
        // A path bit outside {0, 1} would let the selection blend the two children.
        bits[i] * (bits[i] - 1) === 0;
        ordered[i] <== MultiMux1(2)(
            [[node[i], siblings[i]], [siblings[i], node[i]]],
            bits[i]
        );
        node[i + 1] <== Poseidon(2)(ordered[i]);
    }
    root <== node[depth];
}

// Asserts 0 <= id < limit with both values taken as `bits`-bit integers.
template WithinRateLimit(bits) {
    assert(bits < 253);
    signal input id;
    signal input limit;

    // Num2Bits pins id to [0, 2^bits); LessThan then compares two in-range values.
    signal idBits[bits] <== Num2Bits(bits)(id);
    signal below <== LessThan(bits)([id, limit]);
    below === 1;
}

template Rln(depth, idBits) {
    signal input identitySecret;
    signal input userMessageLimit;
    signal input messageId;
    signal input pathElements[depth];
    signal input identityPathIndex[depth];

    signal input x;
    signal input externalNullifier;

    signal output y;
    signal output root;
    signal output nullifier;

    // The membership leaf binds the identity to its rate limit.
    signal identityCommitment <== Poseidon(1)([identitySecret]);
    signal rateCommitment <== Poseidon(2)([identityCommitment, userMessageLimit]);

    root <== MerkleRoot(depth)(rateCommitment, identityPathIndex, pathElements);

    WithinRateLimit(idBits)(messageId, userMessageLimit);

    // One line per (secret, epoch, message id): a second share on it reveals the secret.
    signal a1 <== Poseidon(3)([identitySecret, externalNullifier, messageId]);
    y <== identitySecret + a1 * x;
    nullifier <== Poseidon(1)([a1]);
}

component main { public [x, externalNullifier] } = Rln(20, 16);
