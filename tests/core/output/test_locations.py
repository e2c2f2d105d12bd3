def test_a_folder_splits_into_its_dataset_root_and_its_partition_folders() -> None:
    from genviral_provider.core.output.locations import partition_key, split_partition

    day = "s3://b/genviral/posts/published_date=2026-01-05"
    assert split_partition(day) == ("s3://b/genviral/posts", {"published_date": "2026-01-05"})
    checkpoint = "file:///out/checkpoints/age=48h/published_date=2026-01-12/"
    assert split_partition(checkpoint) == ("file:///out/checkpoints", {"age": "48h", "published_date": "2026-01-12"})
    assert split_partition("file:///out/posts/2026-01-05") == ("file:///out/posts/2026-01-05", {})
    assert partition_key(day) == "2026-01-05"
    assert partition_key(checkpoint) == "age=48h/published_date=2026-01-12"
    assert partition_key("file:///out/posts") is None
