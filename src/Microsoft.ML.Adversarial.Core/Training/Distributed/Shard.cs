namespace Microsoft.ML.Adversarial.Training.Distributed;

/// <summary>
/// Which examples of an epoch each of N data-parallel replicas trains on. Every rank computes the same epoch order
/// (a function of seed and epoch) and takes every N-th position of it, starting at its rank: rank r of N gets positions
/// r, r + N, r + 2N, ... So local minibatch j of every rank (m / N examples) together is global minibatch j (positions
/// j m .. (j + 1) m - 1) of a one-process run with minibatch m, and each rank's first k / N examples together are the
/// global minibatch's first k: the same examples are made adversarial. The R mod N positions at the end of an epoch's
/// order (different rows each epoch) are left out so that every rank takes the same number of steps.
/// </summary>
internal static class Shard
{
    /// <summary>Rows per rank in each epoch: floor(rows / size).</summary>
    public static int RowsPerRank(int rows, int size) => rows / size;

    /// <summary>Rank <paramref name="rank"/>'s share of <paramref name="epochOrder"/> (strided, see the class remarks).</summary>
    public static int[] Take(int[] epochOrder, int rank, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (rank < 0 || rank >= size) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank must lie in [0, {size}).");
        if (size == 1) return epochOrder;
        var local = new int[RowsPerRank(epochOrder.Length, size)];
        for (int j = 0; j < local.Length; j++) local[j] = epochOrder[rank + j * size];
        return local;
    }
}
