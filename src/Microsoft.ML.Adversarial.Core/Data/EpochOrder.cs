namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// The order rows are read in during one epoch of training: a permutation of the row indices that is a fixed function of
/// (seed, epoch), so a run resumed in a new process reads exactly the batches an uninterrupted run would. Only indices
/// are shuffled, never the data, so any source with random access by row (<see cref="IImageSource"/>) is shuffled without
/// being held in memory.
/// </summary>
public static class EpochOrder
{
    /// <summary>
    /// The rows rank <paramref name="rank"/> of <paramref name="ranks"/> trains on in epoch <paramref name="epoch"/>: the
    /// epoch's permutation of 0..<paramref name="rowCount"/>-1 (the same on every rank), of which this rank takes the
    /// positions <c>rank, rank + ranks, rank + 2 ranks, ...</c>, <see cref="ShardLength"/> of them. So local minibatch j of
    /// every rank (m / N rows) together is global minibatch j of a one-process run with minibatch m, and each rank's
    /// first k / N rows together are the global minibatch's first k: the same rows are made adversarial. The
    /// <c>rowCount mod ranks</c> positions at the end of the permutation (other rows each epoch) are left out so that
    /// every rank takes the same number of steps; with one rank this is the whole permutation. The one rule the trainer,
    /// one process or many, reads its rows by.
    /// </summary>
    /// <param name="seed">The training seed (<c>AdversarialTrainingOptions.Seed</c>, or the trainer's override).</param>
    /// <param name="epoch">Zero-based epoch.</param>
    /// <param name="rowCount">Rows of the source.</param>
    /// <param name="rank">This process's rank, 0 to <paramref name="ranks"/> - 1.</param>
    /// <param name="ranks">Number of data-parallel processes (1: not distributed).</param>
    public static int[] For(int seed, long epoch, int rowCount, int rank = 0, int ranks = 1)
    {
        if (rowCount < 0) throw new ArgumentOutOfRangeException(nameof(rowCount), rowCount, "The row count must be >= 0.");
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "The epoch must be >= 0.");
        CheckRank(rank, ranks);
        var order = Enumerable.Range(0, rowCount).ToArray();
        // A fixed arithmetic mix, not HashCode.Combine: HashCode is randomised per process, and a resumed run in a new
        // process must see the same order. (The formula is the trainer's since its first release: changing it would change
        // every seeded run.)
        new Random(unchecked(seed * 1_000_003 + (int)epoch * 7919)).Shuffle(order);
        if (ranks == 1) return order;
        var part = new int[ShardLength(rowCount, ranks)];
        for (int i = 0; i < part.Length; i++) part[i] = order[rank + (long)i * ranks];
        return part;
    }

    /// <summary>Rows each of <paramref name="ranks"/> ranks trains on per epoch: floor(rowCount / ranks), the same on every rank.</summary>
    public static int ShardLength(int rowCount, int ranks)
    {
        CheckRank(0, ranks);
        return rowCount / ranks;
    }

    private static void CheckRank(int rank, int ranks)
    {
        if (ranks < 1) throw new ArgumentOutOfRangeException(nameof(ranks), ranks, "There must be at least one rank.");
        if (rank < 0 || rank >= ranks) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank must lie in 0..{ranks - 1}.");
    }
}
