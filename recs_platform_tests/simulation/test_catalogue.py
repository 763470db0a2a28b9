import numpy as np

from recs_platform.simulation import ShopConfig, build_catalogue
from recs_platform.simulation.catalogue import category_sizes


def test_skus_are_zero_padded_and_sort_like_the_item_index():
    catalogue = build_catalogue(ShopConfig(n_items=120, n_categories=6))
    assert catalogue.skus[:2] == ["sku-000000", "sku-000001"]
    assert catalogue.skus == sorted(catalogue.skus)
    assert len(set(catalogue.skus)) == 120


def test_category_sizes_are_zipf_like_and_add_up():
    config = ShopConfig()
    sizes = category_sizes(config)
    assert sizes.sum() == config.n_items
    assert (np.diff(sizes) <= 0).all()
    assert sizes.min() >= config.n_neighbours + 1
    assert sizes[0] > 5 * sizes[-1]


def test_neighbours_are_distinct_items_of_the_same_category():
    catalogue = build_catalogue(ShopConfig(n_items=300, n_categories=10))
    for item in range(catalogue.n_items):
        neighbours = catalogue.neighbours[item]
        assert (neighbours >= 0).all()
        assert item not in neighbours
        assert len(set(neighbours.tolist())) == len(neighbours)
        assert (catalogue.category[neighbours] == catalogue.category[item]).all()
        assert (catalogue.neighbour_weight[item] > 0).all()


def test_small_categories_get_fewer_neighbours_not_fake_ones():
    catalogue = build_catalogue(ShopConfig(n_items=12, n_categories=3, n_neighbours=8))
    counts = (catalogue.neighbours >= 0).sum(axis=1)
    sizes = np.bincount(catalogue.category)
    assert (counts == sizes[catalogue.category] - 1).all()
    assert (catalogue.neighbour_weight[catalogue.neighbours < 0] == 0).all()


def test_category_switch_is_a_distribution_over_other_categories():
    catalogue = build_catalogue(ShopConfig())
    switch = catalogue.category_switch
    assert np.allclose(switch.sum(axis=1), 1.0)
    assert (np.diag(switch) == 0).all()
    off_diagonal = switch[~np.eye(len(switch), dtype=bool)]
    assert (off_diagonal > 0).all()


def test_launches_are_inside_the_window_and_new_items_drift_up():
    config = ShopConfig()
    catalogue = build_catalogue(config)
    launched = catalogue.launch_day > 0
    assert launched.sum() == round(config.new_item_share * config.n_items)
    assert catalogue.launch_day.max() < config.days
    assert catalogue.drift[launched].mean() > catalogue.drift[~launched].mean() + 0.03
    assert (catalogue.popularity_on(0)[launched] == 0).all()
    assert np.isclose(catalogue.base_popularity.sum(), 1.0)


def test_same_seed_same_catalogue():
    first, second = build_catalogue(ShopConfig(seed=3)), build_catalogue(ShopConfig(seed=3))
    assert (first.neighbours == second.neighbours).all()
    assert (first.base_popularity == second.base_popularity).all()
    assert not (build_catalogue(ShopConfig(seed=4)).category == first.category).all()
